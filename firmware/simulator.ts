/**
 * The terminal face of a hub on mock GPIO: the LED drawn in its colour, each relay's state and
 * the button, redrawn on every change, with keys for the reset button. Terminals report key
 * presses but not releases, so one key toggles the button down and up (hold it "down" for 10 s
 * to arm the reset) and another gives a short press.
 */
import type { MockGpio } from "../hal/mock-backend.js";
import type { Color } from "../hal/rgb-led.js";
import type { Hub } from "./hub.js";
import { LED_TABLE, describePattern } from "./led-table.js";
import { formatSetupSecret } from "../provisioning/pairing.js";

const ANSI: Record<Color, string> = {
  off: "\x1b[90m○\x1b[0m",
  red: "\x1b[91m●\x1b[0m",
  green: "\x1b[92m●\x1b[0m",
  yellow: "\x1b[93m●\x1b[0m",
  blue: "\x1b[94m●\x1b[0m",
  magenta: "\x1b[95m●\x1b[0m",
  cyan: "\x1b[96m●\x1b[0m",
  white: "\x1b[97m●\x1b[0m",
};

export const SIMULATOR_KEYS = {
  toggleButton: "b",
  shortPress: "p",
  quit: "q",
} as const;

const SHORT_PRESS_MS = 200;

export interface SimulatorIo {
  input: NodeJS.ReadStream;
  output: NodeJS.WriteStream;
}

export class TerminalSimulator {
  private buttonDownSince: number | undefined;
  /** The setup secret is printed once per unclaimed period. */
  private announced = false;
  private readonly unsubscribe: (() => void)[] = [];
  private ticker: NodeJS.Timeout | undefined;
  private onKey = (data: Buffer) => this.handleKey(data.toString());

  constructor(
    private readonly hub: Hub,
    private readonly gpio: MockGpio,
    private readonly buttonPin: number,
    private readonly buttonActiveLow: boolean,
    private readonly io: SimulatorIo,
    private readonly quit: () => void,
  ) {}

  start(): void {
    const { input, output } = this.io;
    output.write(
      `Keys: [${SIMULATOR_KEYS.toggleButton}] reset button down/up   [${SIMULATOR_KEYS.shortPress}] short press   ` +
        `[${SIMULATOR_KEYS.quit}] quit\n`,
    );
    this.unsubscribe.push(this.hub.led.onChange(() => this.draw()));
    const onState = () => void this.announceSetupSecret();
    this.hub.lifecycle.on("change", onState);
    this.unsubscribe.push(() => this.hub.lifecycle.off("change", onState));
    void this.announceSetupSecret();
    for (const relay of this.hub.locks.values()) this.unsubscribe.push(relay.onChange(() => this.draw()));
    // While the button is held the seconds count up, so the installer sees 10 s approach.
    this.ticker = setInterval(() => this.buttonDownSince !== undefined && this.draw(), 100);
    input.setRawMode(true);
    input.resume();
    input.on("data", this.onKey);
    this.draw();
  }

  /** Prints a log line above the status line without tearing it. */
  printAbove(line: string): void {
    this.io.output.write(`\r\x1b[K${line}\n`);
    this.draw();
  }

  stop(): void {
    clearInterval(this.ticker);
    for (const off of this.unsubscribe.splice(0)) off();
    this.io.input.off("data", this.onKey);
    if (this.io.input.isTTY) this.io.input.setRawMode(false);
    this.io.input.pause();
    this.io.output.write("\n");
  }

  /** Shown only here, to whoever sits at the simulated Pi; a real IQ keeps it in a root-only file. */
  private async announceSetupSecret(): Promise<void> {
    if (this.hub.lifecycle.phase !== "unclaimed") {
      this.announced = false;
      return;
    }
    if (this.announced) return;
    this.announced = true;
    const secret = await this.hub.setupSecret();
    if (secret === undefined) return;
    this.printAbove(
      `IQ ${this.hub.iqId} is unclaimed. Setup secret: ${formatSetupSecret(secret)}\n` +
        `  claim it from another terminal: ${this.hub.claimCommand(formatSetupSecret(secret))}`,
    );
  }

  private handleKey(key: string): void {
    if (key === SIMULATOR_KEYS.quit || key === "\x03") return this.quit();
    if (key === SIMULATOR_KEYS.toggleButton) {
      if (this.buttonDownSince === undefined) this.press();
      else this.release();
    } else if (key === SIMULATOR_KEYS.shortPress && this.buttonDownSince === undefined) {
      this.press();
      setTimeout(() => this.release(), SHORT_PRESS_MS);
    }
    this.draw();
  }

  private press(): void {
    this.buttonDownSince = Date.now();
    this.gpio.press(this.buttonPin, { activeLow: this.buttonActiveLow });
  }

  private release(): void {
    this.buttonDownSince = undefined;
    this.gpio.release(this.buttonPin, { activeLow: this.buttonActiveLow });
  }

  private draw(): void {
    const { color } = this.hub.led.current();
    const line = renderStatusLine(
      {
        color,
        pattern: describePattern(LED_TABLE[this.hub.lifecycle.state]),
        locks: [...this.hub.locks].map(([name, relay]) => ({ name, unlocked: relay.isUnlocked })),
        heldMs: this.buttonDownSince === undefined ? undefined : Date.now() - this.buttonDownSince,
      },
      this.io.output.columns ?? DEFAULT_COLUMNS,
    );
    this.io.output.write(`\r\x1b[K${line}`);
  }
}

const DEFAULT_COLUMNS = 80;
const SEPARATOR = " │ ";

export interface StatusView {
  color: Color;
  /** The LED pattern in words (describePattern). */
  pattern: string;
  locks: { name: string; unlocked: boolean }[];
  /** How long the button has been held down, or undefined when it is up. */
  heldMs: number | undefined;
}

/**
 * The status line, at most `columns - 1` characters wide: a line that wraps is no longer redrawn
 * in place by `\r`, so every redraw (ten a second while the button is held) would add a row and
 * scroll away the log line that says "release now". The keys for the button's current position
 * are always shown; the locks give way (cut with "…") when there is no room, then the pattern's words.
 */
export function renderStatusLine(view: StatusView, columns: number): string {
  const button = view.heldMs === undefined ? "button up" : `held ${(view.heldMs / 1000).toFixed(1)}s`;
  const keys =
    view.heldMs === undefined
    ? `[${SIMULATOR_KEYS.toggleButton}]hold [${SIMULATOR_KEYS.shortPress}]press [${SIMULATOR_KEYS.quit}]quit`
    : `[${SIMULATOR_KEYS.toggleButton}]release [${SIMULATOR_KEYS.quit}]quit`;
  const roomBeside = (led: string) => columns - 1 - [led, button, keys].join(SEPARATOR).length - SEPARATOR.length;
  // In a narrow terminal the pattern's words go too; the coloured dot stays.
  const led = roomBeside(`● ${view.pattern}`) > 1 ? `● ${view.pattern}` : "●";
  const room = roomBeside(led);
  let locks = view.locks.map(({ name, unlocked }) => `${name} ${unlocked ? "UNLOCKED" : "locked"}`).join("  ");
  if (locks.length > room) locks = room > 1 ? `${locks.slice(0, room - 1)}…` : "";
  const plain = [led, ...(locks === "" ? [] : [locks]), button, keys].join(SEPARATOR);
  // Colour only after measuring: escape sequences take no columns.
  return ANSI[view.color] + plain.slice(1).replace(/\bUNLOCKED\b/g, "\x1b[92mUNLOCKED\x1b[0m");
}
