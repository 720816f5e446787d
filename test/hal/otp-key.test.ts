import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { RpiOtpKeyTool } from "../../hal/otp-key.js";
import { tempStateDir } from "../firmware/temp-state.js";

/** A stand-in for rpi-otp-private-key: a script that prints what a board would. */
function fakeTool(body: string): string {
  const file = join(tempStateDir(), "rpi-otp-private-key");
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

const KEY_HEX = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

describe("the OTP key through rpi-otp-private-key", () => {
  it("reads the 256-bit key the tool prints as hex", async () => {
    const reading = await new RpiOtpKeyTool(fakeTool(`echo ${KEY_HEX}`)).read();
    expect(Buffer.from(reading.key!).toString("hex")).toBe(KEY_HEX);
  });

  it("takes all zeros as a board with no key programmed", async () => {
    expect(await new RpiOtpKeyTool(fakeTool(`echo ${"0".repeat(64)}`)).read()).toEqual({
      reason: "no customer OTP private key is programmed on this board",
    });
  });

  it("says why there is no key: no tool, a failing tool, or output that is not a key", async () => {
    expect((await new RpiOtpKeyTool(join(tempStateDir(), "missing")).read()).reason).toMatch(/is not installed/);
    expect((await new RpiOtpKeyTool(fakeTool("echo 'Failed to read the current key from OTP' >&2; exit 1")).read()).reason).toMatch(
      /failed: Failed to read the current key from OTP/,
    );
    expect((await new RpiOtpKeyTool(fakeTool("echo 0x80000000")).read()).reason).toMatch(/printed no 256-bit key/);
  });

  it("gives up on a tool that hangs", async () => {
    expect((await new RpiOtpKeyTool(fakeTool("sleep 5"), 200).read()).reason).toMatch(/failed/);
  });
});
