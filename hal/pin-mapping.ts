/**
 * From BCM numbers (what pinout diagrams print) to sysfs GPIO numbers (what /sys/class/gpio
 * wants). Since kernel 6.6 GPIO chips get dynamic bases, so the sysfs number is the base of
 * the chip that drives the 40-pin header plus the BCM number: 512 + n on a Pi 0–4 and 571 + n
 * on a Pi 5 today, n on older kernels. The base is read from sysfs, never guessed: a wrong
 * base would drive some other line while the door relay floats.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { GpioError } from "./errors.js";

export const DEFAULT_SYSFS_ROOT = "/sys/class/gpio";

/** The SoC GPIO block has lines 0..53 (the header uses 0..27). */
const MAX_BCM = 53;

/** Label of the chip that drives the header, per Raspberry Pi generation. */
const HEADER_CHIPS: ReadonlyMap<string, string> = new Map([
  ["pinctrl-rp1", "Raspberry Pi 5"],
  ["pinctrl-bcm2711", "Raspberry Pi 4"],
  ["pinctrl-bcm2835", "Raspberry Pi Zero–3"],
]);

export interface GpioChip {
  /** Directory name under the sysfs root, e.g. `gpiochip512`. */
  name: string;
  label: string;
  /** NaN when the `base` file is missing or unreadable as a number. */
  base: number;
}

/** Where the sysfs base came from, for the start-up log. */
export interface ChipBase {
  base: number;
  source: string;
}

export interface PinMappingOptions {
  sysfsRoot?: string;
  /** An explicit base (config `gpio.sysfsBase`): skips detection. */
  base?: number;
}

export function assertBcm(bcm: number): void {
  if (!Number.isInteger(bcm) || bcm < 0 || bcm > MAX_BCM) {
    throw new GpioError(`BCM pin must be an integer from 0 to ${MAX_BCM}, got ${bcm}`, { bcm });
  }
}

/** The sysfs GPIO number of `bcm`, from the explicit base or the detected one. */
export function sysfsNumber(bcm: number, options: PinMappingOptions = {}): number {
  assertBcm(bcm);
  return resolveChipBase(options).base + bcm;
}

/** The base of the header's GPIO chip under `sysfsRoot`; throws a GpioError listing the chips found otherwise. */
export function detectChipBase(sysfsRoot: string = DEFAULT_SYSFS_ROOT): number {
  return findHeaderChip(sysfsRoot).base;
}

export function resolveChipBase({ sysfsRoot = DEFAULT_SYSFS_ROOT, base }: PinMappingOptions = {}): ChipBase {
  if (base !== undefined) {
    if (!Number.isInteger(base) || base < 0) {
      throw new GpioError(`gpio.sysfsBase must be a non-negative integer, got ${base}`, { base });
    }
    return { base, source: `sysfs base ${base} from gpio.sysfsBase` };
  }
  const { label, board, base: detected } = findHeaderChip(sysfsRoot);
  return { base: detected, source: `${label} (${board}), sysfs base ${detected}` };
}

/** Every `gpiochip*` under `sysfsRoot`, in number order; none if the root does not exist. */
export function listGpioChips(sysfsRoot: string): GpioChip[] {
  const entries = unlessMissing(() => readdirSync(sysfsRoot)) ?? [];
  return entries
    .filter((name) => /^gpiochip\d+$/.test(name))
    .sort((a, b) => chipNumber(a) - chipNumber(b))
    .map((name) => ({
      name,
      label: readSysfsText(join(sysfsRoot, name, "label")) ?? "",
      base: Number.parseInt(readSysfsText(join(sysfsRoot, name, "base")) ?? "", 10),
    }));
}

/**
 * A sysfs/procfs text file, trimmed, or undefined if it does not exist. Device-tree strings
 * end in NUL, which is dropped too.
 */
export function readSysfsText(path: string): string | undefined {
  return unlessMissing(() => readFileSync(path, "utf8").replaceAll("\0", "").trim());
}

function findHeaderChip(sysfsRoot: string): GpioChip & { board: string } {
  const chips = listGpioChips(sysfsRoot);
  for (const chip of chips) {
    const board = HEADER_CHIPS.get(chip.label);
    if (board !== undefined && Number.isInteger(chip.base)) return { ...chip, board };
  }
  const found = chips.length === 0 ? "none" : chips.map((c) => `${c.name} "${c.label}" base ${c.base}`).join(", ");
  const expected = [...HEADER_CHIPS].map(([label, board]) => `${label} (${board})`).join(", ");
  throw new GpioError(
    `no Raspberry Pi GPIO chip under ${sysfsRoot} (found: ${found}); expected one labelled ${expected}. ` +
      `If the header is driven by another chip, set gpio.sysfsBase to its base`,
    { sysfsRoot, chips },
  );
}

/** The result of `read`, or undefined if the path it reads does not exist; other errors are thrown. */
function unlessMissing<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw error;
  }
}

function chipNumber(name: string): number {
  return Number(name.slice("gpiochip".length));
}
