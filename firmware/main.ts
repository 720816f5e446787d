#!/usr/bin/env node
/**
 * The hub's entry point: read the config, claim the pins in their safe state, open the store,
 * start the IQ, tell systemd, and end cleanly on SIGTERM. Everything the IQ does lives in
 * Hub; this file only owns the process.
 */
import { parseArgs } from "node:util";
import { MockGpio } from "../hal/mock-backend.js";
import { openGpio } from "../hal/select-backend.js";
import { CONFIG_FILE_ENV, loadConfig, requireServiceOrNamedConfig, type LoadedConfig } from "./config.js";
import { ConfigError, IqError } from "./errors.js";
import { Hub } from "./hub.js";
import { LED_TABLE, describePattern } from "./led-table.js";
import { createLogger } from "./log.js";
import { createNotifier } from "./sd-notify.js";
import { TerminalSimulator } from "./simulator.js";
import { VERSION } from "./version.js";
import { Store } from "./store.js";

/** Exit status for a configuration error (sysexits EX_CONFIG); the unit does not restart on it. */
const EXIT_CONFIG = 78;
/**
 * Exit status for state this hub must not run on (sysexits EX_DATAERR): a store that fails its
 * integrity seal, a card in another board. Restarting cannot fix either; the unit does not.
 */
const EXIT_UNTRUSTED_STATE = 65;
const UNTRUSTED_STATE: ReadonlySet<string> = new Set(["store_tampered", "device_key_wrong_board", "device_key_otp_unavailable"]);
/** After SIGTERM the relay is locked at once; the rest must finish within this or we exit anyway. */
const SHUTDOWN_GRACE_MS = 1_500;

const USAGE = `Usage: iq-hub [--config FILE]
       sudo iq-hub party add|list|remove …   (the LAN broker's parties: iq-hub party --help)

Runs the IQ hub. With no config file and no GPIO (a laptop), it runs on mock GPIO with an
embedded broker and shows the LED and relay in the terminal.

Options:
  --config FILE   configuration file (default: $${CONFIG_FILE_ENV}, else /etc/iq-hub/config.json if present)
  --version       print the version
  --help          print this help
`;

function parseCommandLine(): { config: string | undefined } {
  const { values } = parseArgs({
    options: { config: { type: "string" }, help: { type: "boolean" }, version: { type: "boolean" } },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  if (values.version === true) {
    process.stdout.write(`${VERSION}\n`);
    process.exit(0);
  }
  return { config: values.config };
}

async function main(): Promise<void> {
  const startedAt = performance.now();
  let loaded: LoadedConfig;
  try {
    loaded = loadConfig({ file: parseCommandLine().config });
    requireServiceOrNamedConfig(loaded);
  } catch (error) {
    process.stderr.write(`iq-hub: ${(error as Error).message}\n`);
    process.exit(EXIT_CONFIG);
  }
  const { config } = loaded;
  let simulator: TerminalSimulator | undefined;
  const log = createLogger({
    level: config.log.level,
    write: (line) => (simulator ? simulator.printAbove(line) : process.stderr.write(`${line}\n`)),
  });
  log.info("starting", { version: VERSION, config: loaded.file ?? "defaults", stateDir: config.stateDir });

  const { port, reason } = await openGpio({
    backend: config.gpio.backend,
    sysfsRoot: config.gpio.sysfsRoot,
    sysfsBase: config.gpio.sysfsBase,
  });
  log.info(reason, { gpio: port.backend });
  // Pins first: the relay is claimed locked before anything else can fail.
  const hub = new Hub({ config, port, log });
  const notifier = createNotifier(log);

  let stopping = false;
  const fatal = (error: unknown): never => {
    const message = error instanceof IqError ? `${error.message} [${error.code}]` : error instanceof Error ? error.message : String(error);
    if (stopping) {
      // Work cut short by the stop (the store is closing): the door is locked already.
      log.warn("stopped with work unfinished", { error: message });
      process.exit(0);
    }
    log.error("fatal error: door locked, LED red", { error: message });
    // Each step on its own: after a shutdown began the pins are closed and writing throws, and
    // nothing here may stop the others or the exit.
    for (const relay of hub.locks.values()) attempt(() => relay.lock());
    // The LED is left red on purpose: the kernel keeps driving it after we exit.
    attempt(() => hub.led.show(LED_TABLE.error));
    // A bad TLS file or the like is a configuration error: systemd must not restart into it.
    process.exit(error instanceof ConfigError ? EXIT_CONFIG : error instanceof IqError && UNTRUSTED_STATE.has(error.code) ? EXIT_UNTRUSTED_STATE : 1);
  };
  process.on("uncaughtException", fatal);
  process.on("unhandledRejection", fatal);

  hub.lifecycle.on("change", (state) => {
    const relays = Object.fromEntries([...hub.locks].map(([name, r]) => [name, r.isUnlocked ? "unlocked" : "locked"]));
    log.info("state", { state, phase: hub.lifecycle.phase, led: describePattern(LED_TABLE[state]), ...relays });
  });

  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    notifier.stopping();
    simulator?.stop();
    simulator = undefined;
    // close() locks the relays and turns the LED off synchronously, before its first await.
    const closing = hub.close();
    port.close();
    log.info("stopped: relays locked, LED off", { signal });
    setTimeout(() => process.exit(0), SHUTDOWN_GRACE_MS).unref();
    void closing.finally(() => process.exit(0));
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));

  try {
    await hub.start(await Store.open(config.stateDir));
  } catch (error) {
    fatal(error);
  }
  notifier.ready(`${hub.lifecycle.state}`);
  notifier.startWatchdog();
  log.info("ready", { iqId: hub.iqId, state: hub.lifecycle.state, startupMs: Math.round(performance.now() - startedAt) });

  if (port instanceof MockGpio && process.stdin.isTTY && process.stdout.isTTY) {
    simulator = new TerminalSimulator(hub, port, config.button.pin, config.button.activeLow, {
      input: process.stdin,
      output: process.stdout,
    }, () => shutdown("quit key"));
    simulator.start();
  }
}

function attempt(step: () => void): void {
  try {
    step();
  } catch {
    // best effort: see fatal()
  }
}

/** `iq-hub party …` manages the LAN broker's parties (systemd/lan-broker/party.ts); anything else runs the hub. */
const start =
  process.argv[2] === "party"
    ? import("../systemd/lan-broker/party.js").then(async ({ partyMain }) => {
        process.exitCode = await partyMain(process.argv.slice(3));
      })
    : main();

start.catch((error: unknown) => {
  const message = error instanceof IqError ? `${error.message} [${error.code}]` : (error as Error).stack ?? String(error);
  process.stderr.write(`iq-hub: ${message}\n`);
  process.exit(1);
});
