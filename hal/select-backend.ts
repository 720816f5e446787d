/**
 * Which GpioPort the hub runs on. Mock GPIO is used only when asked for, or when the machine has
 * no GPIO at all; on a Pi a broken real backend stops the start with its error, because a hub
 * that quietly drives a mock relay while the real door stays shut is worse than one that
 * refuses to start.
 */
import { GpioError } from "./errors.js";
import type { GpioPort } from "./gpio-port.js";
import { MockGpio } from "./mock-backend.js";
import { type OnoffGpioOptions, openOnoffGpio } from "./onoff-backend.js";
import { DEFAULT_SYSFS_ROOT, listGpioChips, readSysfsText } from "./pin-mapping.js";

export type GpioBackendChoice = "auto" | "onoff" | "mock";

export interface OpenGpioOptions extends OnoffGpioOptions {
  backend: GpioBackendChoice;
  deviceTreeModelPath?: string;
}

export interface OpenedGpio {
  port: GpioPort;
  /** One sentence for the start-up log: which backend and why. */
  reason: string;
}

export async function openGpio(options: OpenGpioOptions): Promise<OpenedGpio> {
  const { backend, sysfsRoot = DEFAULT_SYSFS_ROOT, deviceTreeModelPath = "/proc/device-tree/model" } = options;
  switch (backend) {
    case "mock":
      return { port: new MockGpio(), reason: "mock GPIO chosen in config" };
    case "onoff":
      return openOnoff(options, "onoff GPIO chosen in config");
    case "auto": {
      const found = realGpioEvidence(deviceTreeModelPath, sysfsRoot);
      if (found === undefined) {
        return { port: new MockGpio(), reason: `no GPIO found (${sysfsRoot} has no gpiochip): running on mock GPIO` };
      }
      try {
        return await openOnoff(options, found);
      } catch (error) {
        if (!(error instanceof GpioError)) throw error;
        throw new GpioError(
          `${found} but its GPIO cannot be used: ${error.message}. Not falling back to mock GPIO on real hardware; ` +
            `set gpio.backend to "mock" to run without it.`,
          error.details,
        );
      }
    }
  }
}

/** Why this machine has real GPIO, or undefined if it has none. */
function realGpioEvidence(deviceTreeModelPath: string, sysfsRoot: string): string | undefined {
  const model = readSysfsText(deviceTreeModelPath);
  if (model?.includes("Raspberry Pi")) return `${model} detected`;
  if (listGpioChips(sysfsRoot).length > 0) return `GPIO chips found under ${sysfsRoot}`;
  return undefined;
}

async function openOnoff(options: OnoffGpioOptions, why: string): Promise<OpenedGpio> {
  const port = await openOnoffGpio(options);
  return { port, reason: `${why}: onoff GPIO on ${port.mapping.source}` };
}
