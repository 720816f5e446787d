import { chmodSync, existsSync, linkSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  DEVICE_KEY_BYTES,
  destroyDeviceKey,
  deviceKeyFile,
  ensureDeviceKey,
  readDeviceKey,
} from "../../firmware/device-key.js";
import { unwrapDeviceKey, wrapDeviceKey, WRAPPED_BYTES } from "../../firmware/device-key-wrap.js";
import { IqError } from "../../firmware/errors.js";
import { tempStateDir } from "./temp-state.js";

describe("device key", () => {
  it("lives beside the database, not in it", () => {
    const stateDir = tempStateDir();
    expect(deviceKeyFile(stateDir)).toBe(join(stateDir, "device.key"));
  });

  it("is created once: 32 random bytes in a file only its owner can read", async () => {
    const file = deviceKeyFile(tempStateDir());
    expect(await readDeviceKey(file)).toBeUndefined();
    const key = await ensureDeviceKey(file);
    expect(key).toHaveLength(DEVICE_KEY_BYTES);
    expect(key.some((byte) => byte !== 0)).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(new Uint8Array(readFileSync(file))).toEqual(key);
    expect(await ensureDeviceKey(file)).toEqual(key);
    expect(readdirSync(join(file, ".."))).toEqual(["device.key"]);
  });

  it("creates the state directory if needed, for the service user only", async () => {
    const stateDir = join(tempStateDir(), "var", "lib", "iq-hub");
    await ensureDeviceKey(deviceKeyFile(stateDir));
    expect(statSync(stateDir).mode & 0o777).toBe(0o700);
  });

  it("is the same key for two processes creating it at the same moment", async () => {
    const file = deviceKeyFile(tempStateDir());
    const keys = await Promise.all(Array.from({ length: 8 }, () => ensureDeviceKey(file)));
    for (const key of keys) expect(key).toEqual(keys[0]);
    expect(new Uint8Array(readFileSync(file))).toEqual(keys[0]);
  });

  it("is refused when others can read it, with the chmod that fixes it", async () => {
    const file = deviceKeyFile(tempStateDir());
    const key = await ensureDeviceKey(file);
    chmodSync(file, 0o644);
    const refusal = await ensureDeviceKey(file).catch((err: unknown) => err);
    expect(refusal).toBeInstanceOf(IqError);
    expect(refusal).toMatchObject({ code: "device_key_unprotected", details: { mode: "0644" } });
    expect((refusal as IqError).message).toContain(`chmod 600 ${file}`);
    // Refused, not replaced: fixing the mode brings the same key back.
    chmodSync(file, 0o600);
    expect(await readDeviceKey(file)).toEqual(key);
  });

  it("is refused when others can write it", async () => {
    const file = deviceKeyFile(tempStateDir());
    await ensureDeviceKey(file);
    chmodSync(file, 0o620);
    await expect(readDeviceKey(file)).rejects.toMatchObject({ code: "device_key_unprotected" });
  });

  it.each([0, 31, 33])("is refused when the file holds %i bytes", async (length) => {
    const file = deviceKeyFile(tempStateDir());
    writeFileSync(file, new Uint8Array(length), { mode: 0o600 });
    await expect(ensureDeviceKey(file)).rejects.toMatchObject({ code: "device_key_invalid" });
    expect(readFileSync(file)).toHaveLength(length);
  });

  it("is overwritten, then removed, by destroy", async () => {
    const stateDir = tempStateDir();
    const file = deviceKeyFile(stateDir);
    const key = await ensureDeviceKey(file);
    // A second name for the same inode shows what happened to the bytes after the unlink.
    const witness = join(stateDir, "witness");
    linkSync(file, witness);
    await destroyDeviceKey(file);
    expect(existsSync(file)).toBe(false);
    const left = new Uint8Array(readFileSync(witness));
    expect(left).toHaveLength(DEVICE_KEY_BYTES);
    expect(left).not.toEqual(key);
    expect(await ensureDeviceKey(file)).not.toEqual(key);
  });

  it("destroy does nothing when there is no key (a reset interrupted and run again)", async () => {
    const file = deviceKeyFile(tempStateDir());
    await expect(destroyDeviceKey(file)).resolves.toBeUndefined();
  });
});

describe("device key wrapped with the board's OTP key", () => {
  const board = { key: new Uint8Array(32).fill(0xa5) };
  const otherBoard = { key: new Uint8Array(32).fill(0x5a) };
  const noBoard = { reason: "rpi-otp-private-key is not installed" };

  it("is stored wrapped, says so in its header, and opens on its own board", async () => {
    const file = deviceKeyFile(tempStateDir());
    const key = await ensureDeviceKey(file, board);
    const stored = new Uint8Array(readFileSync(file));
    expect(stored).toHaveLength(WRAPPED_BYTES);
    expect(Buffer.from(stored.subarray(0, 4)).toString()).toBe("IQWK");
    expect(Buffer.from(stored).includes(Buffer.from(key))).toBe(false);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(await readDeviceKey(file, board)).toEqual(key);
    expect(await ensureDeviceKey(file, board)).toEqual(key);
  });

  it("a card moved to another Pi: refused, saying so and what to do", async () => {
    const file = deviceKeyFile(tempStateDir());
    await ensureDeviceKey(file, board);
    const refusal = (await readDeviceKey(file, otherBoard).catch((e: unknown) => e)) as IqError;
    expect(refusal).toMatchObject({ code: "device_key_wrong_board" });
    expect(refusal.message).toMatch(/wrapped with the OTP key of another board/);
    expect(refusal.message).toMatch(/Put the card back into its own Pi/);
  });

  it("a wrapped key on a machine that cannot read an OTP key: refused, never replaced", async () => {
    const file = deviceKeyFile(tempStateDir());
    const key = await ensureDeviceKey(file, board);
    const refusal = (await ensureDeviceKey(file, noBoard).catch((e: unknown) => e)) as IqError;
    expect(refusal).toMatchObject({ code: "device_key_otp_unavailable" });
    expect(refusal.message).toContain("rpi-otp-private-key is not installed");
    expect(await readDeviceKey(file, board)).toEqual(key);
  });

  it("a plain key on a board that now has an OTP key is wrapped in place, and stays the same key", async () => {
    const file = deviceKeyFile(tempStateDir());
    const key = await ensureDeviceKey(file);
    expect(await readDeviceKey(file, board)).toEqual(key);
    expect(statSync(file).size).toBe(WRAPPED_BYTES);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(join(file, ".."))).toEqual(["device.key"]);
    await expect(readDeviceKey(file, otherBoard)).rejects.toMatchObject({ code: "device_key_wrong_board" });
  });

  it("a wrapped file with a flipped bit does not open", async () => {
    const file = deviceKeyFile(tempStateDir());
    await ensureDeviceKey(file, board);
    const stored = readFileSync(file);
    stored[WRAPPED_BYTES - 1]! ^= 1;
    writeFileSync(file, stored);
    await expect(readDeviceKey(file, board)).rejects.toMatchObject({ code: "device_key_wrong_board" });
  });

  it("wrap and unwrap are inverse, and only under the same OTP key", () => {
    const key = new Uint8Array(32).fill(3);
    const wrapped = wrapDeviceKey(key, board.key);
    expect(unwrapDeviceKey(wrapped, board.key)).toEqual(key);
    expect(unwrapDeviceKey(wrapped, otherBoard.key)).toBeUndefined();
    expect(wrapDeviceKey(key, board.key)).not.toEqual(wrapped);
  });
});
