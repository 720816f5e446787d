import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { GpioError } from "../../hal/errors.js";
import { Button } from "../../hal/button.js";
import { type OnoffGpio, openOnoffGpio } from "../../hal/onoff-backend.js";
import { Relay } from "../../hal/relay.js";
import { type FakeOnoff, fakeOnoff } from "./fake-onoff.js";
import { type FakeMachine, PI4_CHIPS, fakeMachine } from "./fake-sysfs.js";

let onoff: FakeOnoff;
let machine: FakeMachine;
let gpio: OnoffGpio;

beforeEach(async () => {
  vi.useFakeTimers();
  onoff = fakeOnoff();
  machine = fakeMachine(PI4_CHIPS);
  gpio = await openOnoffGpio({ sysfsRoot: machine.sysfsRoot, loadOnoff: () => Promise.resolve(onoff) });
});
afterEach(() => {
  vi.useRealTimers();
  machine.remove();
});

/** A GpioError with exactly this message (its details are not compared). */
function gpioError(message: string): unknown {
  return expect.objectContaining({ name: "GpioError", code: "gpio_unavailable", message });
}

function pin(index: number) {
  const p = onoff.pins[index];
  if (!p) throw new Error(`no pin #${index} was exported`);
  return p;
}

describe("onoff backend", () => {
  it("exports an output at its sysfs number, already at the safe level", () => {
    new Relay(gpio, { pin: 27, activeLow: true, pulseMs: 1_000 });
    expect(pin(0)).toMatchObject({ gpio: 512 + 27, direction: "high", value: 1 });
  });

  it("drives an output through writeSync", () => {
    const relay = new Relay(gpio, { pin: 27, activeLow: false, pulseMs: 1_000 });
    relay.hold();
    expect(pin(0).value).toBe(1);
  });

  it("leaves an output exported and driven when it is closed, so the relay stays locked", () => {
    new Relay(gpio, { pin: 27, activeLow: true, pulseMs: 1_000 }).close();
    expect(pin(0)).toMatchObject({ unexported: false, value: 1 });
  });

  it("exports an input with both edges and feeds them through the debounce", () => {
    const button = new Button(gpio, { pin: 17, debounceMs: 50, holdThresholdsMs: [10_000], shortPressMaxMs: 2_000 });
    const down = vi.fn();
    button.on("down", down);
    expect(pin(0)).toMatchObject({ gpio: 529, direction: "in", edge: "both" });
    pin(0).interrupt(0);
    pin(0).interrupt(1);
    vi.advanceTimersByTime(49);
    pin(0).interrupt(0);
    vi.advanceTimersByTime(49);
    expect(down).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(down).toHaveBeenCalledOnce();
  });

  it("sees a button held at start (pin low at export) and ignores it", async () => {
    onoff = fakeOnoff(0);
    gpio = await openOnoffGpio({ sysfsRoot: machine.sysfsRoot, loadOnoff: () => Promise.resolve(onoff) });
    const button = new Button(gpio, { pin: 17, debounceMs: 50, holdThresholdsMs: [10_000], shortPressMaxMs: 2_000 });
    expect(button.ignoringUntilReleased).toBe(true);
  });

  it("unexports an input when it is closed", () => {
    gpio.input(17, { debounceMs: 50 }).close();
    expect(pin(0).unexported).toBe(true);
  });

  it("closes every pin when the port closes", () => {
    gpio.input(17, { debounceMs: 50 });
    gpio.input(18, { debounceMs: 50 });
    gpio.close();
    expect(onoff.pins.map((p) => p.unexported)).toEqual([true, true]);
  });

  it("uses an explicit sysfs base without reading sysfs", async () => {
    const port = await openOnoffGpio({ sysfsRoot: "/nonexistent", sysfsBase: 0, loadOnoff: () => Promise.resolve(onoff) });
    port.output(27, 0);
    expect(pin(0).gpio).toBe(27);
    expect(port.mapping.source).toBe("sysfs base 0 from gpio.sysfsBase");
  });

  describe("turns kernel errors into what to fix", () => {
    it("EINVAL: the sysfs number does not exist", () => {
      onoff.failWith("EINVAL");
      expect(() => gpio.output(27, 0)).toThrow(
        gpioError("GPIO 539 (BCM 27) does not exist: wrong sysfs number — check gpio.sysfsBase"),
      );
    });

    it.each(["EACCES", "EPERM"])("%s: the service user is not in group gpio", (code) => {
      onoff.failWith(code);
      expect(() => gpio.input(17, { debounceMs: 50 })).toThrow(
        gpioError("permission denied on /sys/class/gpio: add the service user to group gpio"),
      );
    });

    it("EBUSY: the pin is in use", () => {
      onoff.failWith("EBUSY");
      expect(() => gpio.output(27, 0)).toThrow(/GPIO 539 \(BCM 27\) is in use/);
    });

    it("any other error still names the pin and keeps the cause", () => {
      onoff.failWith("EIO");
      const attempt = () => gpio.output(27, 0);
      expect(attempt).toThrow(GpioError);
      expect(attempt).toThrow(/GPIO 539 \(BCM 27\) failed: EIO/);
    });

    it("a failed claim leaves the pin free to claim again", () => {
      onoff.failWith("EBUSY");
      expect(() => gpio.output(27, 0)).toThrow(GpioError);
      onoff.failWith("");
      expect(() => gpio.output(27, 0)).not.toThrow();
    });

    it("onoff that cannot load (not on Linux) is a GpioError, not a crash", async () => {
      const opening = openOnoffGpio({
        sysfsRoot: machine.sysfsRoot,
        loadOnoff: () => Promise.reject(new Error("epoll.node: invalid ELF header")),
      });
      await expect(opening).rejects.toThrow(GpioError);
      await expect(opening).rejects.toThrow(/could not be loaded \(epoll.node: invalid ELF header\)/);
    });
  });
});
