/**
 * Small files only the hub's user may read (the device key, the MQTT client id), made so that a
 * power cut leaves either no file or the whole one, and a second hub process starting at the same
 * moment never replaces the file the first one made.
 */
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import { basename, dirname, join } from "node:path";

/**
 * Writes `bytes` to a temporary file (mode 0600, synced) and links it into place as `file`. A
 * link, unlike a rename, never replaces a file that appeared meanwhile. Returns false, writing
 * nothing, if `file` was there first.
 */
export async function createPrivateFile(file: string, bytes: Uint8Array): Promise<boolean> {
  try {
    await placePrivateFile(file, bytes, (temp) => fs.link(temp, file));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  }
  return true;
}

/** Replaces `file` with `bytes` in one rename: a power cut leaves the old file or the new one. */
export async function replacePrivateFile(file: string, bytes: Uint8Array): Promise<void> {
  await placePrivateFile(file, bytes, (temp) => fs.rename(temp, file));
}

/** Writes a synced temporary file beside `file`, puts it into place with `place`, syncs the directory. */
async function placePrivateFile(file: string, bytes: Uint8Array, place: (temp: string) => Promise<void>): Promise<void> {
  const dir = dirname(file);
  const temp = join(dir, `.${basename(file)}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await writeSynced(temp, "wx", bytes, 0o600);
    await place(temp);
  } finally {
    await fs.rm(temp, { force: true });
  }
  await syncDirectory(dir);
}

export async function writeSynced(path: string, flags: "wx" | "r+", bytes: Uint8Array, mode?: number): Promise<void> {
  const handle = await fs.open(path, flags, mode);
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A new or removed name is durable only once its directory is synced. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
