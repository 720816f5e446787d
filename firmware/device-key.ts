/**
 * The device key: 32 random bytes under which every secret in the store is sealed. It lives in
 * its own file beside the database, not in it (`<stateDir>/device.key` next to `<stateDir>/db`),
 * so a copy of the database alone reveals nothing, and a factory reset that destroys this one
 * file makes every sealed secret unreadable even where the flash keeps old blocks.
 *
 * The file must be readable by the hub's user only. A key that others could read may already
 * have been copied, so the hub refuses it rather than quietly fixing the mode: the person who
 * fixes it with chmod also learns that it happened.
 */
import { randomBytes, randomFillSync } from "node:crypto";
import { promises as fs } from "node:fs";
import { dirname, join } from "node:path";
import { IqError } from "./errors.js";
import { createPrivateFile, syncDirectory, writeSynced } from "./private-file.js";

export const DEVICE_KEY_BYTES = 32;

export function deviceKeyFile(stateDir: string): string {
  return join(stateDir, "device.key");
}

/**
 * The device key in `file`, created on first use. Whether a missing key on a claimed IQ means
 * "start over" is the caller's decision: see `readDeviceKey`.
 */
export async function ensureDeviceKey(file: string): Promise<Uint8Array> {
  // A key created by someone else between our read and our create is read on the third call.
  const key = (await readDeviceKey(file)) ?? (await createDeviceKey(file)) ?? (await readDeviceKey(file));
  if (key === undefined) {
    throw new IqError("device_key_unavailable", `the device key ${file} vanished while it was being created`, { file });
  }
  return key;
}

/** The device key in `file`, or undefined when there is no such file. */
export async function readDeviceKey(file: string): Promise<Uint8Array | undefined> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, "r");
  } catch (err) {
    if (errno(err) === "ENOENT") return undefined;
    throw unavailable(file, err);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw damaged(file);
    if ((stat.mode & 0o077) !== 0) {
      const mode = (stat.mode & 0o777).toString(8).padStart(4, "0");
      throw new IqError(
        "device_key_unprotected",
        `the device key ${file} is open to other users (mode ${mode}); fix it with: chmod 600 ${file} ` +
          `(if others could read it, factory-reset the IQ: its secrets may have been copied)`,
        { file, mode },
      );
    }
    if (stat.size !== DEVICE_KEY_BYTES) throw damaged(file);
    const key = new Uint8Array(DEVICE_KEY_BYTES);
    const { bytesRead } = await handle.read(key, 0, DEVICE_KEY_BYTES, 0);
    if (bytesRead !== DEVICE_KEY_BYTES) throw new Error("short read");
    return key;
  } catch (err) {
    throw unavailable(file, err);
  } finally {
    await handle.close();
  }
}

/**
 * The first step of a factory reset: overwrites the key file with random bytes, syncs, and
 * removes it. Overwriting is best effort on flash (wear levelling may keep the old block); the
 * point is that no file on the IQ names the key any more. Does nothing if there is no key.
 */
export async function destroyDeviceKey(file: string): Promise<void> {
  try {
    const { size } = await fs.stat(file);
    await writeSynced(file, "r+", randomBytes(Math.max(size, DEVICE_KEY_BYTES)));
    await fs.unlink(file);
    await syncDirectory(dirname(file));
  } catch (err) {
    if (errno(err) === "ENOENT") return;
    throw unavailable(file, err);
  }
}

/**
 * A new key in `file`, or undefined if the file was there first: created, never replaced, since
 * losing a key loses every secret sealed under it (see createPrivateFile).
 */
async function createDeviceKey(file: string): Promise<Uint8Array | undefined> {
  const key = randomFillSync(new Uint8Array(DEVICE_KEY_BYTES));
  try {
    if (await createPrivateFile(file, key)) return key;
  } catch (err) {
    key.fill(0);
    throw unavailable(file, err);
  }
  key.fill(0);
  return undefined;
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

function damaged(file: string): IqError {
  return new IqError(
    "device_key_invalid",
    `the device key ${file} is not a file of ${DEVICE_KEY_BYTES} bytes: it is damaged, and the secrets ` +
      `sealed under it cannot be read; restore it from a backup or factory-reset the IQ`,
    { file },
  );
}

function unavailable(file: string, err: unknown): IqError {
  if (err instanceof IqError) return err;
  const reason = err instanceof Error ? err.message : String(err);
  return new IqError("device_key_unavailable", `cannot use the device key ${file}: ${reason}`, { file });
}
