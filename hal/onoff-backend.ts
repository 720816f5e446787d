/**
 * The GpioPort on a Raspberry Pi: sysfs GPIO through `onoff`. onoff is loaded only when this
 * backend is chosen, because its native part (epoll) exists only on Linux; tests hand in a fake
 * module instead, so the error translation is checked without hardware.
 */
import type { Direction, Edge, Gpio } from "onoff";
import { GpioError } from "./errors.js";
import { DebouncedInput } from "./debounce.js";
import type { DigitalInput, DigitalOutput, GpioPort, InputOptions, Level } from "./gpio-port.js";
import { OutputPin, PinClaims } from "./pin-claims.js";
import { type ChipBase, type PinMappingOptions, resolveChipBase, sysfsNumber } from "./pin-mapping.js";

/** The part of onoff this backend uses. */
export type OnoffPin = Pick<Gpio, "readSync" | "writeSync" | "watch" | "unwatchAll" | "unexport">;
export interface OnoffModule {
  Gpio: new (gpio: number, direction: Direction, edge?: Edge) => OnoffPin;
}

export interface OnoffGpioOptions {
  sysfsRoot?: string;
  /** Config `gpio.sysfsBase`: skips chip detection. */
  sysfsBase?: number;
  /** How onoff is loaded; tests inject a fake. */
  loadOnoff?: () => Promise<OnoffModule>;
}

/** Find the chip base, load onoff, and return the port. Throws a GpioError saying what to fix. */
export async function openOnoffGpio(options: OnoffGpioOptions = {}): Promise<OnoffGpio> {
  const { sysfsRoot, sysfsBase, loadOnoff = () => import("onoff") } = options;
  const mapping = resolveChipBase({ sysfsRoot, base: sysfsBase });
  let onoff: OnoffModule;
  try {
    onoff = await loadOnoff();
  } catch (error) {
    throw new GpioError(
      `the onoff GPIO library could not be loaded (${messageOf(error)}): its native part builds only on Linux — run "npm ci" on the Pi`,
      { cause: messageOf(error) },
    );
  }
  return new OnoffGpio(onoff, mapping);
}

export class OnoffGpio implements GpioPort {
  readonly backend = "onoff";
  private readonly claims = new PinClaims();
  private readonly pinMapping: PinMappingOptions;

  constructor(
    private readonly onoff: OnoffModule,
    /** Which chip base is used and why, for the start-up log. */
    readonly mapping: ChipBase,
  ) {
    this.pinMapping = { base: mapping.base };
  }

  output(bcm: number, initial: Level): DigitalOutput {
    return this.claims.claim(bcm, (release) => {
      // "high"/"low" exports the pin as an output already at that level: no glitch through the wrong state.
      const pin = this.export(bcm, initial === 1 ? "high" : "low");
      // Not unexported on close: freeing a line can hand it back to the pin controller as an
      // input (pinctrl-bcm2835 does so), and a floating relay input is not a locked door.
      return new OutputPin(bcm, initial, (level) => this.guard(bcm, () => pin.writeSync(level)), release);
    });
  }

  input(bcm: number, options: InputOptions): DigitalInput {
    return this.claims.claim(bcm, (release) => {
      const pin = this.export(bcm, "in", "both");
      const input = new DebouncedInput(this.guard(bcm, () => pin.readSync()), options.debounceMs, () => {
        pin.unwatchAll();
        pin.unexport();
        release();
      });
      // An epoll error carries no level; the next edge will.
      pin.watch((error, value) => {
        if (!error) input.edge(value);
      });
      return input;
    });
  }

  close(): void {
    this.claims.closeAll();
  }

  private export(bcm: number, direction: Direction, edge?: Edge): OnoffPin {
    return this.guard(bcm, () => new this.onoff.Gpio(sysfsNumber(bcm, this.pinMapping), direction, edge));
  }

  /** Runs a sysfs operation on `bcm`, turning the kernel's errno into a sentence that says what to fix. */
  private guard<T>(bcm: number, operation: () => T): T {
    try {
      return operation();
    } catch (error) {
      throw translateError(error, bcm, sysfsNumber(bcm, this.pinMapping));
    }
  }
}

function translateError(error: unknown, bcm: number, gpio: number): GpioError {
  if (error instanceof GpioError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  const details = { bcm, gpio, cause: code ?? messageOf(error) };
  switch (code) {
    case "EINVAL":
      return new GpioError(
        `GPIO ${gpio} (BCM ${bcm}) does not exist: wrong sysfs number — check gpio.sysfsBase`,
        details,
      );
    case "EACCES":
    case "EPERM":
      return new GpioError("permission denied on /sys/class/gpio: add the service user to group gpio", details);
    case "EBUSY":
      return new GpioError(
        `GPIO ${gpio} (BCM ${bcm}) is in use by a kernel driver or another program: free it or wire the device to another pin`,
        details,
      );
    case "ENOENT":
      return new GpioError(
        "/sys/class/gpio is missing or incomplete: this kernel has no sysfs GPIO (CONFIG_GPIO_SYSFS)",
        details,
      );
    default:
      return new GpioError(`GPIO ${gpio} (BCM ${bcm}) failed: ${messageOf(error)}`, details);
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
