import { afterEach, describe, expect, it } from "vitest";
import { GpioError } from "../../hal/errors.js";
import { MockGpio } from "../../hal/mock-backend.js";
import { openGpio } from "../../hal/select-backend.js";
import { fakeOnoff } from "./fake-onoff.js";
import { type FakeChip, type FakeMachine, PI4_CHIPS, PI5_CHIPS, fakeMachine } from "./fake-sysfs.js";

let machine: FakeMachine | undefined;
afterEach(() => machine?.remove());

function on(chips: FakeChip[], model?: string): FakeMachine {
  machine = fakeMachine(chips, model);
  return machine;
}

const loadOnoff = () => Promise.resolve(fakeOnoff());

describe("choosing the GPIO backend", () => {
  it("mock in config: mock, and says so", async () => {
    const { sysfsRoot, deviceTreeModelPath } = on(PI4_CHIPS, "Raspberry Pi 4 Model B Rev 1.4");
    const opened = await openGpio({ backend: "mock", sysfsRoot, deviceTreeModelPath, loadOnoff });
    expect(opened.port).toBeInstanceOf(MockGpio);
    expect(opened.reason).toBe("mock GPIO chosen in config");
  });

  it("auto with no GPIO at all: mock, with the reason", async () => {
    const { sysfsRoot, deviceTreeModelPath } = on([]);
    const opened = await openGpio({ backend: "auto", sysfsRoot, deviceTreeModelPath, loadOnoff });
    expect(opened.port.backend).toBe("mock");
    expect(opened.reason).toBe(`no GPIO found (${sysfsRoot} has no gpiochip): running on mock GPIO`);
  });

  it("auto with no sysfs GPIO directory at all (a laptop): mock", async () => {
    const opened = await openGpio({
      backend: "auto",
      sysfsRoot: "/nonexistent/sys/class/gpio",
      deviceTreeModelPath: "/nonexistent/model",
      loadOnoff,
    });
    expect(opened.port.backend).toBe("mock");
  });

  it("auto on a Pi 5: onoff on pinctrl-rp1, and says why", async () => {
    const { sysfsRoot, deviceTreeModelPath } = on(PI5_CHIPS, "Raspberry Pi 5 Model B Rev 1.0");
    const opened = await openGpio({ backend: "auto", sysfsRoot, deviceTreeModelPath, loadOnoff });
    expect(opened.port.backend).toBe("onoff");
    expect(opened.reason).toBe(
      "Raspberry Pi 5 Model B Rev 1.0 detected: onoff GPIO on pinctrl-rp1 (Raspberry Pi 5), sysfs base 571",
    );
  });

  it("auto with gpio chips but no device-tree model: onoff", async () => {
    const { sysfsRoot, deviceTreeModelPath } = on(PI4_CHIPS);
    const opened = await openGpio({ backend: "auto", sysfsRoot, deviceTreeModelPath, loadOnoff });
    expect(opened.port.backend).toBe("onoff");
    expect(opened.reason).toMatch(/^GPIO chips found under .*: onoff GPIO on pinctrl-bcm2711/);
  });

  it("auto on a Pi whose GPIO cannot be used: throws, never falls back to mock", async () => {
    const { sysfsRoot, deviceTreeModelPath } = on(
      [{ label: "gpio-brcmstb@107d508500", base: 512 }],
      "Raspberry Pi 5 Model B Rev 1.0",
    );
    const opening = openGpio({ backend: "auto", sysfsRoot, deviceTreeModelPath, loadOnoff });
    await expect(opening).rejects.toThrow(GpioError);
    await expect(opening).rejects.toThrow(/^Raspberry Pi 5 Model B Rev 1.0 detected but its GPIO cannot be used/);
    await expect(opening).rejects.toThrow(/Not falling back to mock GPIO/);
  });

  it("auto on a Pi where onoff does not load: throws", async () => {
    const { sysfsRoot, deviceTreeModelPath } = on(PI4_CHIPS, "Raspberry Pi 4 Model B Rev 1.4");
    const opening = openGpio({
      backend: "auto",
      sysfsRoot,
      deviceTreeModelPath,
      loadOnoff: () => Promise.reject(new Error("Cannot find module 'epoll'")),
    });
    await expect(opening).rejects.toThrow(/onoff GPIO library could not be loaded/);
  });

  it("onoff in config on a machine without GPIO: throws", async () => {
    const { sysfsRoot, deviceTreeModelPath } = on([]);
    const opening = openGpio({ backend: "onoff", sysfsRoot, deviceTreeModelPath, loadOnoff });
    await expect(opening).rejects.toThrow(/no Raspberry Pi GPIO chip .*found: none/);
  });

  it("onoff in config with an explicit base: onoff without detection", async () => {
    const opened = await openGpio({ backend: "onoff", sysfsRoot: "/nonexistent", sysfsBase: 512, loadOnoff });
    expect(opened.reason).toBe("onoff GPIO chosen in config: onoff GPIO on sysfs base 512 from gpio.sysfsBase");
  });
});
