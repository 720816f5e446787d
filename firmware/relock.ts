#!/usr/bin/env node
/**
 * The unit's `ExecStopPost=`: after the hub has stopped for any reason (SIGKILL, the watchdog, a
 * crash that never reached its own lock), drive every relay to its locked level through the same
 * config and HAL the hub uses. The kernel keeps driving whatever level a dead process last wrote,
 * so a hub killed during a pulse or in Office Mode would otherwise leave the door open until the
 * next start, and Restart= may never come (a bad config, a unit stopped for good).
 */
import { pathToFileURL } from "node:url";
import type { GpioPort } from "../hal/gpio-port.js";
import { Relay } from "../hal/relay.js";
import { openGpio } from "../hal/select-backend.js";
import type { HubConfig } from "./config.js";
import { loadConfig } from "./config.js";
import { IqError } from "./errors.js";

/**
 * Claims each lock's pin at its locked level and releases it (onoff re-drives a pin a dead hub left
 * exported). One lock that fails does not keep the others open: all are tried, then it throws.
 */
export function relockAll(config: Pick<HubConfig, "locks">, port: GpioPort): string[] {
  const failures: string[] = [];
  for (const lock of config.locks) {
    try {
      new Relay(port, lock).close();
    } catch (error) {
      failures.push(`${lock.name} (BCM ${lock.pin}): ${(error as Error).message}`);
    }
  }
  port.close();
  if (failures.length > 0) throw new IqError("relock_failed", `could not lock ${failures.join("; ")}`);
  return config.locks.map((lock) => lock.name);
}

async function main(): Promise<number> {
  try {
    const { config } = loadConfig();
    const { port } = await openGpio(config.gpio);
    const names = relockAll(config, port);
    process.stderr.write(`iq-hub relock: relays locked (${names.join(", ")}) on ${port.backend} GPIO\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`iq-hub relock: could not lock the relays: ${(error as Error).message}\n`);
    return 1;
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main();
}
