/**
 * Every message of the IQ protocol, as schemas shared by the hub (which validates what comes in)
 * and the companion app (which builds what goes out). docs/protocol.md is the prose version.
 * Binary values travel as base64url strings.
 */
import { z } from "zod";

export const PROTOCOL_VERSION = 2;

const b64u = z.string().regex(/^[A-Za-z0-9_-]*$/, "base64url").max(200_000);
const id = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "1 to 64 letters, digits, _ or -");
/** `relay`: the web app's relay (story 5), paired by the Owner; it carries Codes and holds no PIN. */
export const ROLES = ["owner", "admin", "superuser", "user", "relay"] as const;
export type Role = (typeof ROLES)[number];
const lockName = z.string().regex(/^[a-z0-9_-]{1,32}$/);
const code = z.string().min(1).max(16);
const pin = z.string().max(16);
/**
 * Names reach terminals and logs: no control characters (C0, DEL, C1), no format characters
 * (bidirectional overrides, zero-width joiners) and no line or paragraph separators.
 */
const userName = z
  .string()
  .trim()
  .min(1)
  .max(64)
  .regex(/^[^\p{Cc}\p{Cf}\p{Zl}\p{Zp}]+$/u, "no control or formatting characters");

/** How many events one `events.list` answer holds at most, and how many bytes of them. */
export const EVENTS_PAGE = { maxEvents: 50, maxBytes: 16 * 1024 } as const;

/** Plain (unsealed) operations and their arguments. */
export const plainArgs = {
  status: z.strictObject({}),
  "events.list": z.strictObject({
    afterSeq: z.number().int().min(0).optional(),
    limit: z.number().int().min(1).max(EVENTS_PAGE.maxEvents).optional(),
  }),
  /**
   * CPace, app = initiator. `share` is the app's CPace message, `sid` 16 random bytes, `commit`
   * SHA-256 of 16 random bytes the app reveals in pair.finish (only the starter can finish).
   */
  "pair.start": z.strictObject({
    kind: z.enum(["claim", "activate", "duplicate"]),
    appId: id,
    userId: id.optional(),
    sid: b64u,
    share: b64u,
    commit: b64u,
  }),
  /** The IQ's ticket back, the revealed commitment, the app's confirmation tag, the sealed box. */
  "pair.finish": z.strictObject({ ticket: b64u, reveal: b64u, confirm: b64u, box: b64u }),
  /** A command sealed for this command alone: ephemeral X25519 key, MAC, box (story 6, 5 via a relay). */
  app: z.strictObject({ appId: id, epk: b64u, mac: b64u, box: b64u }),
} as const;
export type PlainOp = keyof typeof plainArgs;
export const PLAIN_OPS = Object.keys(plainArgs) as PlainOp[];

export const requestEnvelope = z.strictObject({
  v: z.literal(PROTOCOL_VERSION),
  id,
  op: z.string().max(32),
  /** Topic for the response; must lie under this IQ's response tree. */
  replyTo: z.string().max(256).optional(),
  /** Absolute expiry, ms since the epoch: a command is never executed after it. */
  expiresAt: z.number().int().positive().optional(),
  args: z.record(z.string(), z.unknown()).default({}),
});
export type RequestEnvelope = z.infer<typeof requestEnvelope>;

export interface ErrorBody {
  code: string;
  message: string;
  details?: Record<string, unknown>;
}
/** What a plain answer says, signed by the IQ's identity key (the `signed` text of the answer). */
export type AnswerBody =
  | { id: string; to: string; ok: true; result: unknown }
  | { id: string; to: string; ok: false; error: ErrorBody };

/** What a sealed answer's box holds: the outcome and the next challenge. */
export type SealedAnswerBody =
  | { ok: true; result: unknown; challenge: string }
  | { ok: false; error: ErrorBody; challenge: string };

/** An IQ's answer on the wire: signed (plain ops and refusals before a box opened) or sealed. */
export type ResponseEnvelope =
  | { v: typeof PROTOCOL_VERSION; id: string; signed: string; sig: string }
  | { v: typeof PROTOCOL_VERSION; id: string; box: string };

/** A signed document (answer, retained state, event): JSON text and its Ed25519 signature. */
export const signedDoc = z.strictObject({ signed: z.string().max(256 * 1024), sig: b64u });

/** What `pair.finish`'s box holds (sealed, purpose "pair"). */
export const pairFinishBox = z.strictObject({
  /** claim: the owner's name. */
  name: userName.optional(),
  /** claim: the owner's chosen PIN. */
  pin: pin.optional(),
});
export type PairFinishBox = z.infer<typeof pairFinishBox>;

/** The sealed commands (inside `app`): each with the user's PIN (a relay has none). */
export const commandArgs = {
  whoami: z.strictObject({}),
  open: z.strictObject({ lock: lockName }),
  office: z.strictObject({ lock: lockName, on: z.boolean() }),
  "user.add": z.strictObject({ name: userName, role: z.enum(["admin", "superuser", "user", "relay"]) }),
  "user.remove": z.strictObject({ userId: id }),
  "user.list": z.strictObject({}),
  "pin.change": z.strictObject({ newPin: pin }),
  /** Owner only, authorised by the Owner's own Code (purpose owner_reset) for this IQ. */
  "pin.reset": z.strictObject({ userId: id, code }),
  /** Before a second device activates with a Code (purpose second_device) of this counter. */
  "device.invite": z.strictObject({ counter: z.number().int().min(0) }),
  backup: z.strictObject({}),
  restore: z.strictObject({ backup: z.unknown() }),
  /** From a paired web relay only: the person's Code, as they typed it (story 5). */
  "web.open": z.strictObject({ userId: id, lock: lockName, code }),
  "web.office": z.strictObject({ userId: id, lock: lockName, on: z.boolean(), code }),
} as const;
export type CommandOp = keyof typeof commandArgs;
export const COMMAND_OPS = Object.keys(commandArgs) as CommandOp[];

export const commandBox = z.strictObject({
  op: z.enum(COMMAND_OPS as [CommandOp, ...CommandOp[]]),
  args: z.record(z.string(), z.unknown()).default({}),
  /** The person's PIN; absent only in a relay's commands. */
  pin: pin.optional(),
  /** The IQ's latest challenge to this app (from its last answer): freshness on the IQ's clock. */
  challenge: b64u.max(64).optional(),
});
export type CommandBox = z.infer<typeof commandBox>;

/** What the pairing result box holds (sealed under the pairing transport key). */
export const pairResultBox = z.strictObject({
  userId: id,
  role: z.enum(ROLES),
  name: z.string(),
  /** The IQ's Ed25519 identity key: it signs state, events and plain answers. */
  identityKey: b64u,
  /** The IQ's X25519 static key: sealed commands are made against it. */
  staticKey: b64u,
  /** The first challenge for a sealed command. */
  challenge: b64u,
});
export type PairResultBox = z.infer<typeof pairResultBox>;

/** The configuration a backup carries: no secrets, sealed to the owner's app in transit. */
export const backupSchema = z.strictObject({
  format: z.literal("iq-hub-backup/1"),
  iqId: id,
  createdAt: z.string(),
  users: z.array(z.strictObject({ userId: id, name: userName, role: z.enum(ROLES) })).max(1000),
  locks: z.array(z.strictObject({ name: lockName, officeMode: z.boolean() })).max(8),
  settings: z.record(z.string(), z.unknown()),
});
export type Backup = z.infer<typeof backupSchema>;
