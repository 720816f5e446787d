/**
 * The companion app's memory: one profile per person and device, a JSON file in `$IQ_HOME`
 * (default `~/.config/iq`) named after the profile (`--profile NAME`, `$IQ_PROFILE`, `default`).
 * It holds the broker URL (and, imported from a connection bundle, a credential for it), the
 * activation on each IQ (ids, the two per-app keys, the IQ's public keys, the Code counter) and
 * the last backups of each IQ the person owns. Never a PIN. The IQs'
 * latest challenges live beside it (challenge-cache.ts).
 *
 * The keys in it are as good as the person's phone: the file is created 0600 and a profile that
 * other users can read is refused, not used. Every change is written to a temporary file and
 * renamed over the old one, so a crash leaves the old profile or the new one, never half of each;
 * counters are written (and synced) before the message that uses them leaves, so a crash can
 * never make the app reuse a counter the IQ has already seen.
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, rename, unlink } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { z } from "zod";

import { ROLES, backupSchema } from "../protocol/messages.js";
import { ChallengeCache } from "./challenge-cache.js";
import { AppError } from "./errors.js";

export const PROFILE_FORMAT = "iq-profile/2";
export const DEFAULT_PROFILE = "default";

const b64u = z.string().regex(/^[A-Za-z0-9_-]+$/, "base64url");
const counter = z.number().int().min(0);

/** What one pairing with one IQ gave this app. Keys are base64url. */
const activationSchema = z.strictObject({
  userId: z.string(),
  role: z.enum(ROLES),
  name: z.string(),
  appId: z.string(),
  codeKey: b64u,
  messageKey: b64u,
  /** The counter of the last Code this app made (any purpose). */
  codeCounter: counter,
  /** The IQ's Ed25519 identity key: what the IQ signs (answers, state, events) must verify with it. */
  identityKey: b64u,
  /** The IQ's X25519 static key: every sealed command is made against it. */
  staticKey: b64u,
  /** False once the IQ said it no longer knows this app (PIN reset, factory reset). */
  activated: z.boolean(),
});
export type Activation = z.infer<typeof activationSchema>;

/** One backup kept in the profile, and whether it was ever pushed back with a restore. */
const keptBackupSchema = z.strictObject({ backup: backupSchema, restored: z.boolean() });
export type KeptBackup = z.infer<typeof keptBackupSchema>;
/**
 * Backups kept per IQ: a backup made after a re-claim and before the restore holds only the new
 * Owner, and must not be the only one left.
 */
export const BACKUPS_KEPT = 10;

/**
 * A broker credential from a connection bundle (bundle.ts): used only for the broker it names, so
 * `--broker` elsewhere never sends this password there.
 */
const connectionSchema = z.strictObject({
  broker: z.string(),
  username: z.string(),
  password: z.string(),
  /** The PEM of the CA that signed the broker's certificate. */
  ca: z.string(),
});
export type Connection = z.infer<typeof connectionSchema>;

const profileSchema = z.strictObject({
  format: z.literal(PROFILE_FORMAT),
  broker: z.string().optional(),
  connection: connectionSchema.optional(),
  /** By IQ id. */
  iqs: z.record(z.string(), activationSchema),
  /**
   * The last BACKUPS_KEPT backups of each IQ, by IQ id, newest last: kept apart from the
   * activation, which a reset ends. A profile written before there was a list holds one backup,
   * read as a list of one (never restored, as far as anyone knows).
   */
  backups: z.record(
    z.string(),
    z.union([z.array(keptBackupSchema), backupSchema.transform((backup): KeptBackup[] => [{ backup, restored: false }])]),
  ),
});
export type ProfileData = z.infer<typeof profileSchema>;

const emptyProfile = (): ProfileData => ({ format: PROFILE_FORMAT, iqs: {}, backups: {} });

const PROFILE_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** Where profiles live and which one to use: explicit options first, then the environment. */
export function profilePath(options: { home?: string; name?: string; env?: NodeJS.ProcessEnv } = {}): {
  name: string;
  file: string;
} {
  const env = options.env ?? process.env;
  const name = options.name ?? env.IQ_PROFILE ?? DEFAULT_PROFILE;
  // The name becomes a file name: no separators, no dots, so it cannot point outside IQ_HOME.
  if (!PROFILE_NAME.test(name)) {
    throw new AppError("profile_name_invalid", `profile name "${name}": use 1 to 64 letters, digits, _ or -`);
  }
  const home = options.home ?? env.IQ_HOME ?? join(homedir(), ".config", "iq");
  return { name, file: join(home, `${name}.json`) };
}

export class Profile {
  /** Updates in this process run one after another, so none is lost between read and write. */
  private tail: Promise<unknown> = Promise.resolve();
  /** The IQs' latest challenges to this profile's apps. */
  readonly challenges: ChallengeCache;

  constructor(
    readonly name: string,
    readonly file: string,
  ) {
    this.challenges = new ChallengeCache(file.replace(/\.json$/, ".challenges.json"));
  }

  static at(options: { home?: string; name?: string; env?: NodeJS.ProcessEnv } = {}): Profile {
    const { name, file } = profilePath(options);
    return new Profile(name, file);
  }

  /** The profile as on disk; an empty one if the file does not exist yet. */
  async read(): Promise<ProfileData> {
    let handle;
    try {
      handle = await open(this.file, "r");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return emptyProfile();
      throw new AppError("profile_unreadable", `cannot read profile ${this.file}: ${(error as Error).message}`);
    }
    try {
      // Checked on the open file, so the file read is the file checked.
      if (((await handle.stat()).mode & 0o077) !== 0) {
        throw new AppError(
          "profile_insecure",
          `profile ${this.file} holds keys but other users can read it; run: chmod 600 ${this.file}`,
        );
      }
      return parseProfile(this.file, await handle.readFile("utf8"));
    } finally {
      await handle.close();
    }
  }

  /**
   * Reads the profile, lets `change` modify it, and writes it back atomically before resolving:
   * once this resolves, the change survives a crash. Returns what `change` returns.
   */
  update<T>(change: (data: ProfileData) => T): Promise<T> {
    const result = this.tail.then(async () => {
      const data = await this.read();
      const value = change(data);
      await writeAtomically(this.file, `${JSON.stringify(profileSchema.parse(data), null, 2)}\n`);
      return value;
    });
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** The activation on `iqId`, or undefined if this profile never paired with it. */
  async activation(iqId: string): Promise<Activation | undefined> {
    return (await this.read()).iqs[iqId];
  }
}

function parseProfile(file: string, text: string): ProfileData {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new AppError("profile_invalid", `profile ${file} is not JSON; fix or remove it`);
  }
  const parsed = profileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue === undefined ? "" : ` at ${issue.path.join(".") || "top level"}: ${issue.message}`;
    throw new AppError("profile_invalid", `profile ${file} is damaged${where}`);
  }
  return parsed.data;
}

/** Temp file (0600, synced) renamed over `file`, then the directory synced so the rename lasts. */
export async function writeAtomically(file: string, text: string): Promise<void> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const temp = join(dir, `.${randomBytes(6).toString("hex")}.tmp`);
  try {
    const handle = await open(temp, "wx", 0o600);
    try {
      await handle.writeFile(text, "utf8");
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw new AppError("profile_unwritable", `cannot write profile ${file}: ${(error as Error).message}`);
  }
  const dirHandle = await open(dir, "r");
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

