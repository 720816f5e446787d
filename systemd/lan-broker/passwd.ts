/**
 * mosquitto's password file, written here rather than with mosquitto_passwd so that the installer
 * can plan it (and write it under --root) like every other file. Each line is
 * `user:$7$<iterations>$<salt>$<hash>`: PBKDF2-HMAC-SHA512, 12-byte salt and 64-byte hash in
 * base64, the format mosquitto 2 reads and mosquitto_passwd writes.
 */
import { pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";

/** mosquitto_passwd's own default. The passwords are random (144 bits), so stretching adds nothing. */
const ITERATIONS = 101;
const SALT_BYTES = 12;
const HASH_BYTES = 64;

export function newPassword(): string {
  return randomBytes(18).toString("base64url");
}

export function hashPassword(password: string, salt: Buffer = randomBytes(SALT_BYTES)): string {
  const hash = pbkdf2Sync(password, salt, ITERATIONS, HASH_BYTES, "sha512");
  return `$7$${ITERATIONS}$${salt.toString("base64")}$${hash.toString("base64")}`;
}

/** Whether `password` matches a `$7$` hash (another kind of hash never matches). */
export function passwordMatches(hash: string, password: string): boolean {
  const match = /^\$7\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(hash);
  if (match === null) return false;
  const expected = Buffer.from(match[3]!, "base64");
  const actual = pbkdf2Sync(password, Buffer.from(match[2]!, "base64"), Number(match[1]), expected.length, "sha512");
  return timingSafeEqual(actual, expected);
}

/** User name → hash, in file order. */
export function parsePasswd(text: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const line of text.split("\n")) {
    const at = line.indexOf(":");
    if (at > 0) entries.set(line.slice(0, at), line.slice(at + 1));
  }
  return entries;
}

export function renderPasswd(entries: ReadonlyMap<string, string>): string {
  return [...entries].map(([user, hash]) => `${user}:${hash}\n`).join("");
}
