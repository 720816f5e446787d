/**
 * Issue 8 item 5, the board half: on a Pi with a customer OTP key the hub wraps its device key
 * with it, says so in its log and its status, and a card moved to another Pi opens nothing there.
 * The board is a fake at the OtpKeyPort; the hub, its store and its key file are real.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { OtpKeyPort } from "../../hal/otp-key.js";
import { deviceKeyFile } from "../../firmware/device-key.js";
import { WRAPPED_BYTES } from "../../firmware/device-key-wrap.js";
import { startTestHub } from "../support/hub.js";
import { tempStateDir } from "./temp-state.js";

const board = (fill: number): OtpKeyPort => ({ read: () => Promise.resolve({ key: new Uint8Array(32).fill(fill) }) });
const noBoard: OtpKeyPort = { read: () => Promise.resolve({ reason: "rpi-otp-private-key is not installed" }) };

describe("the device key on a board with an OTP key", () => {
  it("is wrapped with it; the log and the status say otp-wrapped; the same board starts again", async () => {
    const stateDir = tempStateDir();
    const first = await startTestHub({ stateDir, otpKey: board(1) });
    const { user } = await first.hub.users.add("Ann", "owner", "2580");
    expect(first.hub.status().keyProtection).toBe("otp-wrapped");
    expect(first.logs.some((l) => l.includes("device key protection: otp-wrapped"))).toBe(true);
    expect(readFileSync(deviceKeyFile(stateDir))).toHaveLength(WRAPPED_BYTES);
    await first.stop();
    const again = await startTestHub({ stateDir, otpKey: board(1) });
    expect((await again.hub.users.get(user.userId))?.name).toBe("Ann");
    expect((await again.hub.users.pin(user.userId))?.pin).toBe("2580");
    await again.stop();
  });

  it("a card moved to another Pi does not start there, and still starts in its own", async () => {
    const stateDir = tempStateDir();
    const first = await startTestHub({ stateDir, otpKey: board(1) });
    const { user } = await first.hub.users.add("Ann", "owner", "2580");
    await first.stop();
    await expect(startTestHub({ stateDir, otpKey: board(2) })).rejects.toMatchObject({ code: "device_key_wrong_board" });
    await expect(startTestHub({ stateDir, otpKey: noBoard })).rejects.toMatchObject({ code: "device_key_otp_unavailable" });
    const home = await startTestHub({ stateDir, otpKey: board(1) });
    expect((await home.hub.users.pin(user.userId))?.pin).toBe("2580");
    await home.stop();
  });

  it("a factory reset wraps the new device key too", async () => {
    const stateDir = tempStateDir();
    const test = await startTestHub({ stateDir, otpKey: board(1) });
    const before = readFileSync(deviceKeyFile(stateDir));
    await test.hub.factoryReset("button");
    const after = readFileSync(deviceKeyFile(stateDir));
    expect(after).toHaveLength(WRAPPED_BYTES);
    expect(after.equals(before)).toBe(false);
    await test.stop();
    await expect(startTestHub({ stateDir, otpKey: board(2) })).rejects.toMatchObject({ code: "device_key_wrong_board" });
  });
});

describe("the device key on a machine without an OTP key", () => {
  it("stays a plain file, as before; the log says file-only and why, the status file-only", async () => {
    const stateDir = tempStateDir();
    const test = await startTestHub({ stateDir, otpKey: noBoard });
    expect(test.hub.status().keyProtection).toBe("file-only");
    const line = test.logs.find((l) => l.includes("device key protection: file-only"));
    expect(line).toContain("rpi-otp-private-key is not installed");
    expect(readFileSync(deviceKeyFile(stateDir))).toHaveLength(32);
    await test.stop();
  });
});
