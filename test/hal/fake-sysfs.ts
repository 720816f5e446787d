/** Fake /sys/class/gpio and /proc/device-tree/model trees in a temp dir, for pin mapping and backend selection. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface FakeChip {
  label: string;
  base: number;
}

export interface FakeMachine {
  sysfsRoot: string;
  deviceTreeModelPath: string;
  remove(): void;
}

/** A machine with these GPIO chips and, if given, this device-tree model (NUL-terminated, like the real file). */
export function fakeMachine(chips: FakeChip[], model?: string): FakeMachine {
  const dir = mkdtempSync(join(tmpdir(), "iq-hal-"));
  const sysfsRoot = join(dir, "sys", "class", "gpio");
  mkdirSync(sysfsRoot, { recursive: true });
  writeFileSync(join(sysfsRoot, "export"), "");
  for (const chip of chips) {
    const chipDir = join(sysfsRoot, `gpiochip${chip.base}`);
    mkdirSync(chipDir);
    writeFileSync(join(chipDir, "label"), `${chip.label}\n`);
    writeFileSync(join(chipDir, "base"), `${chip.base}\n`);
    writeFileSync(join(chipDir, "ngpio"), "54\n");
  }
  const deviceTreeModelPath = join(dir, "proc", "device-tree", "model");
  if (model !== undefined) {
    mkdirSync(join(dir, "proc", "device-tree"), { recursive: true });
    writeFileSync(deviceTreeModelPath, `${model}\0`);
  }
  return { sysfsRoot, deviceTreeModelPath, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Chips as a Raspberry Pi 5 on kernel 6.6+ lists them. */
export const PI5_CHIPS: FakeChip[] = [
  { label: "gpio-brcmstb@107d508500", base: 512 },
  { label: "gpio-brcmstb@107d517c00", base: 544 },
  { label: "pinctrl-rp1", base: 571 },
];
/** A Raspberry Pi 4 on kernel 6.6+ (the firmware GPIO expander sits next to the SoC's chip). */
export const PI4_CHIPS: FakeChip[] = [
  { label: "pinctrl-bcm2711", base: 512 },
  { label: "raspberrypi-exp-gpio", base: 570 },
];
