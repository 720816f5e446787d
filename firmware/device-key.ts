/**
 * The device key: 32 random bytes under which every secret in the store is sealed. It lives in
 * its own file beside the database, not in it (`<stateDir>/device.key` next to `<stateDir>/db`),
 * so a copy of the database alone reveals nothing, and a factory reset that destroys this one
 * file makes every sealed secret unreadable even where the flash keeps old blocks.
 *
 * The file must be readable by the hub's user only. A key that others could read may already
 * have been copied, so the hub refuses it rather than quietly fixing the mode: the person who
 * fixes it with chmod also learns that it happened.
 *
 * On a board with a customer OTP private key (hal/otp-key.ts) the file holds the key wrapped with
 * it (device-key-wrap.ts): `otp-wrapped`. Elsewhere it holds the key itself: `file-only`. A plain
 * key found on a board that has an OTP key is wrapped in place at the next start.
 */
import { randomBytes, randomFillSync } from "node:crypto";
import { promises as fs } from "node:fs";
import { dirname, join } from "node:path";
import type { OtpKeyReading } from "../hal/otp-key.js";
import { isWrapped, unwrapDeviceKey, wrapDeviceKey, WRAPPED_BYTES } from "./device-key-wrap.js";
import { IqError } from "./errors.js";
import { createPrivateFile, replacePrivateFile, syncDirectory, writeSynced } from "./private-file.js";

export const DEVICE_KEY_BYTES = 32;

/** Which protection the device key has: what `status` and the start-up log say. */
export type KeyProtection = "otp-wrapped" | "file-only";

export function keyProtection(otp: OtpKeyReading): KeyProtection {
  return otp.key === undefined ? "file-only" : "otp-wrapped";
}

/** For callers that have asked no board (tests, tools): the key is kept as a plain file. */
const NO_OTP: OtpKeyReading = { reason: "no board asked" };

export function deviceKeyFile(stateDir: string): string {
  return join(stateDir, "device.key");
}

/**
 * The device key in `file`, created on first use. Whether a missing key on a claimed IQ means
 * "start over" is the caller's decision: see `readDeviceKey`.
 */
export async function ensureDeviceKey(file: string, otp: OtpKeyReading = NO_OTP): Promise<Uint8Array> {
  // A key created by someone else between our read and our create is read on the third call.
  const key = (await readDeviceKey(file, otp)) ?? (await createDeviceKey(file, otp)) ?? (await readDeviceKey(file, otp));
  if (key === undefined) {
    throw new IqError("device_key_unavailable", `the device key ${file} vanished while it was being created`, { file });
  }
  return key;
}

/**
 * The device key in `file`, or undefined when there is no such file. A wrapped key is opened with
 * the board's OTP key; a plain one is wrapped now if the board has one.
 */
export async function readDeviceKey(file: string, otp: OtpKeyReading = NO_OTP): Promise<Uint8Array | undefined> {
  const bytes = await readKeyFile(file);
  if (bytes === undefined || bytes.length === DEVICE_KEY_BYTES) {
    if (bytes !== undefined && otp.key !== undefined) await wrapInPlace(file, bytes, otp.key);
    return bytes;
  }
  if (!isWrapped(bytes)) throw damaged(file);
  if (otp.key === undefined) {
    throw new IqError(
      "device_key_otp_unavailable",
      `the device key ${file} is wrapped with a board's OTP key, but no OTP key can be read here (${otp.reason}). ` +
        `If this is the card's own Pi, let the hub read it (rpi-otp-private-key needs /dev/vcio: group video); ` +
        `otherwise put the card back into its own Pi`,
      { file },
    );
  }
  const key = unwrapDeviceKey(bytes, otp.key);
  if (key === undefined) {
    throw new IqError(
      "device_key_wrong_board",
      `the device key ${file} was wrapped with the OTP key of another board (or the file is damaged): this card was set up on another Pi, ` +
        `and nothing sealed on it can be opened here. Put the card back into its own Pi; or, to use this Pi, start ` +
        `over: stop the hub, delete db/ and device.key, start it, claim the IQ and push the Owner's backup back (iq restore)`,
      { file },
    );
  }
  return key;
}

/** The file's bytes (a plain or a wrapped key), checked for owner-only access and size. */
async function readKeyFile(file: string): Promise<Uint8Array | undefined> {
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
    if (stat.size !== DEVICE_KEY_BYTES && stat.size !== WRAPPED_BYTES) throw damaged(file);
    const bytes = new Uint8Array(stat.size);
    const { bytesRead } = await handle.read(bytes, 0, stat.size, 0);
    if (bytesRead !== stat.size) throw new Error("short read");
    return bytes;
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
async function createDeviceKey(file: string, otp: OtpKeyReading): Promise<Uint8Array | undefined> {
  const key = randomFillSync(new Uint8Array(DEVICE_KEY_BYTES));
  try {
    if (await createPrivateFile(file, otp.key === undefined ? key : wrapDeviceKey(key, otp.key))) return key;
  } catch (err) {
    key.fill(0);
    throw unavailable(file, err);
  }
  key.fill(0);
  return undefined;
}

/**
 * A plain key on a board that has an OTP key: from now on the file holds it wrapped. Replaced in
 * one rename, so a power cut leaves the plain or the wrapped file, both of which open. (Flash may
 * keep the old blocks: programming the OTP key before the first start avoids a plain copy.)
 */
async function wrapInPlace(file: string, key: Uint8Array, otpKey: Uint8Array): Promise<void> {
  try {
    await replacePrivateFile(file, wrapDeviceKey(key, otpKey));
  } catch (err) {
    throw unavailable(file, err);
  }
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

function damaged(file: string): IqError {
  return new IqError(
    "device_key_invalid",
    `the device key ${file} is neither a key of ${DEVICE_KEY_BYTES} bytes nor one wrapped with a board's OTP key: it is damaged, and the secrets ` +
      `sealed under it cannot be read; restore it from a backup or factory-reset the IQ`,
    { file },
  );
}

function unavailable(file: string, err: unknown): IqError {
  if (err instanceof IqError) return err;
  const reason = err instanceof Error ? err.message : String(err);
  return new IqError("device_key_unavailable", `cannot use the device key ${file}: ${reason}`, { file });
}
