import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { openOnoffGpio } from "../../hal/onoff-backend.js";
import { validateConfig } from "../../firmware/config.js";
import { relockAll } from "../../firmware/relock.js";
import { fakeMachine, PI4_CHIPS, type FakeMachine } from "../hal/fake-sysfs.js";
import { fakeOnoff } from "../hal/fake-onoff.js";

const config = validateConfig({
  locks: [
    { name: "door", pin: 27 },
    { name: "gate", pin: 5, activeLow: true },
  ],
});

let machine: FakeMachine | undefined;
afterEach(() => machine?.remove());

async function piGpio(onoff = fakeOnoff()) {
  machine = fakeMachine(PI4_CHIPS, "Raspberry Pi 4 Model B Rev 1.5");
  return { onoff, port: await openOnoffGpio({ sysfsRoot: machine.sysfsRoot, loadOnoff: () => Promise.resolve(onoff) }) };
}

describe("relock after the hub has stopped (ExecStopPost)", () => {
  it("drives every relay to its locked level through sysfs: low for active-high, high for active-low", async () => {
    const { onoff, port } = await piGpio();
    expect(relockAll(config, port)).toEqual(["door", "gate"]);
    // sysfs number = chip base 512 + BCM; exporting as "low"/"high" sets the level with no glitch.
    expect(onoff.pins.map(({ gpio, direction, value }) => ({ gpio, direction, value }))).toEqual([
      { gpio: 539, direction: "low", value: 0 },
      { gpio: 517, direction: "high", value: 1 },
    ]);
    // Left exported: unexporting would hand the line back as a floating input.
    expect(onoff.pins.every((pin) => !pin.unexported)).toBe(true);
  });

  it("a pin that cannot be driven still leaves the other locks locked, and says which failed", async () => {
    const onoff = fakeOnoff();
    const { port } = await piGpio(onoff);
    const real = onoff.Gpio;
    onoff.Gpio = class extends real {
      constructor(...args: ConstructorParameters<typeof real>) {
        if (args[0] === 539) throw Object.assign(new Error("EBUSY: export 539"), { code: "EBUSY" });
        super(...args);
      }
    };
    expect(() => relockAll(config, port)).toThrow(/could not lock door \(BCM 27\): GPIO 539 \(BCM 27\) is in use/);
    expect(onoff.pins.map(({ gpio, value }) => [gpio, value])).toEqual([[517, 1]]);
  });

  it("runs as the built script the unit calls, and says what it locked", async () => {
    const script = join(import.meta.dirname, "../../dist/firmware/relock.js");
    const { stderr } = await promisify(execFile)(process.execPath, [script], {
      env: { PATH: process.env.PATH ?? "", IQ_HUB_GPIO__BACKEND: "mock", IQ_HUB_LOCKS: JSON.stringify(config.locks) },
    });
    expect(stderr).toBe("iq-hub relock: relays locked (door, gate) on mock GPIO\n");
  });
});
