/**
 * The board's customer OTP private key: 256 bits that a Raspberry Pi 4, Pi 5, CM4 or CM5 keeps in
 * one-time-programmable memory once someone has programmed them (`rpi-otp-private-key -w`; see
 * the README). The hub wraps its device key with it, so a copy of the card opens nothing on
 * another board. A port, so that tests bring their own board.
 *
 * The real backend runs `rpi-otp-private-key` (package rpi-eeprom on Raspberry Pi OS), which
 * asks the firmware through `vcmailbox` (/dev/vcio, group `video`) and prints the key as 64 hex
 * digits; all zeros means nothing was programmed.
 */
import { execFile } from "node:child_process";

/** The key, or why there is none on this machine (shown in the log). */
export type OtpKeyReading = { key: Uint8Array; reason?: undefined } | { key?: undefined; reason: string };

export interface OtpKeyPort {
  read(): Promise<OtpKeyReading>;
}

export const OTP_KEY_BYTES = 32;
export const OTP_KEY_TOOL = "rpi-otp-private-key";

export class RpiOtpKeyTool implements OtpKeyPort {
  /** `command`: the tool (a test gives a script that prints what a board would). */
  constructor(
    private readonly command = OTP_KEY_TOOL,
    private readonly timeoutMs = 5_000,
  ) {}

  read(): Promise<OtpKeyReading> {
    return new Promise((resolve) => {
      execFile(this.command, [], { timeout: this.timeoutMs, encoding: "utf8" }, (error, stdout, stderr) => {
        if ((error as NodeJS.ErrnoException | null)?.code === "ENOENT") {
          resolve({ reason: `${this.command} is not installed (not a Raspberry Pi, or no rpi-eeprom package)` });
        } else if (error !== null) {
          resolve({ reason: `${this.command} failed: ${stderr.trim() || error.message}` });
        } else {
          resolve(parseKey(stdout, this.command));
        }
      });
    });
  }
}

function parseKey(output: string, command: string): OtpKeyReading {
  const hex = output.trim();
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) return { reason: `${command} printed no 256-bit key (a board without a customer OTP key?)` };
  const key = new Uint8Array(Buffer.from(hex, "hex"));
  if (key.every((byte) => byte === 0)) return { reason: "no customer OTP private key is programmed on this board" };
  return { key };
}
