/**
 * Every message of the IQ protocol, as schemas shared by the hub (which validates what comes in)
 * and the companion app (which builds what goes out). docs/protocol.md is the prose version.
 * Binary values travel as base64url strings.
 */
import { z } from "zod";

export const PROTOCOL_VERSION = 1;

const b64u = z.string().regex(/^[A-Za-z0-9_-]*$/, "base64url").max(200_000);
const id = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "1 to 64 letters, digits, _ or -");
export const ROLES = ["owner", "admin", "superuser", "user"] as const;
export type Role = (typeof ROLES)[number];
const lockName = z.string().regex(/^[a-z0-9_-]{1,32}$/);
const code = z.string().min(1).max(16);
const pin = z.string().max(16);
const userName = z.string().trim().min(1).max(64);

/** Plain (unsealed) operations and their arguments. */
export const plainArgs = {
  status: z.strictObject({}),
  "events.list": z.strictObject({ afterSeq: z.number().int().min(0).optional(), limit: z.number().int().min(1).max(500).optional() }),
  /** CPace, app = initiator. `share` is the app's CPace message, `sid` 16 random bytes. */
  "pair.start": z.strictObject({
    kind: z.enum(["claim", "activate", "duplicate"]),
    appId: id,
    userId: id.optional(),
    sid: b64u,
    share: b64u,
  }),
  /** The app's confirmation tag and, sealed under the new message key, what the pairing sets. */
  "pair.finish": z.strictObject({ session: id, confirm: b64u, box: b64u }),
  /** A command sealed under the app's message key (story 6). */
  app: z.strictObject({ appId: id, box: b64u }),
  /** The web app relays (user, lock, Code) through the cloud (story 5). */
  "web.open": z.strictObject({ userId: id, lock: lockName, code }),
  "web.office": z.strictObject({ userId: id, lock: lockName, on: z.boolean(), code }),
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
export type ResponseEnvelope =
  | { v: typeof PROTOCOL_VERSION; id: string; ok: true; result: unknown }
  | { v: typeof PROTOCOL_VERSION; id: string; ok: false; error: ErrorBody };

/** What `pair.finish`'s box holds (sealed, purpose "pair"). */
export const pairFinishBox = z.strictObject({
  /** claim: the owner's name. */
  name: userName.optional(),
  /** claim: the owner's chosen PIN. */
  pin: pin.optional(),
});
export type PairFinishBox = z.infer<typeof pairFinishBox>;

/** The sealed commands (inside `app`): each with the user's PIN. */
export const commandArgs = {
  whoami: z.strictObject({}),
  open: z.strictObject({ lock: lockName }),
  office: z.strictObject({ lock: lockName, on: z.boolean() }),
  "user.add": z.strictObject({ name: userName, role: z.enum(["admin", "superuser", "user"]) }),
  "user.remove": z.strictObject({ userId: id }),
  "user.list": z.strictObject({}),
  "pin.change": z.strictObject({ newPin: pin }),
  /** Owner only, authorised by the Owner's own Code (purpose owner_reset) for this IQ. */
  "pin.reset": z.strictObject({ userId: id, code }),
  /** Before a second device activates with a Code (purpose second_device) of this counter. */
  "device.invite": z.strictObject({ counter: z.number().int().min(0) }),
  backup: z.strictObject({}),
  restore: z.strictObject({ backup: z.unknown() }),
} as const;
export type CommandOp = keyof typeof commandArgs;
export const COMMAND_OPS = Object.keys(commandArgs) as CommandOp[];

export const commandBox = z.strictObject({
  op: z.enum(COMMAND_OPS as [CommandOp, ...CommandOp[]]),
  args: z.record(z.string(), z.unknown()).default({}),
  pin,
  /**
   * When the command stops being valid (ms since the epoch). Inside the seal, so a relay that
   * holds a command back cannot deliver it later: the envelope's expiresAt is not authenticated.
   */
  expiresAt: z.number().int().positive(),
});
export type CommandBox = z.infer<typeof commandBox>;

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

/** Sealing purposes, so a box made for one use never opens for another. */
export const SEAL_PURPOSE = {
  pair: "pair",
  pairResult: "pair.result",
  command: "command",
  response: "response",
} as const;
