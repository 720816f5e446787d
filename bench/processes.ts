/**
 * The hub and mosquitto as child processes, the way they run on a Pi: started from the built
 * entry point with a throw-away state directory, watched through their stderr, stopped with
 * SIGTERM. Whatever is still running when the bench exits (an error part-way) is killed with it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { accepts, mosquittoConfig } from "./net.js";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const HUB_ENTRY = fileURLToPath(new URL("../firmware/main.js", import.meta.url));
const UNIT_FILE = fileURLToPath(new URL("../../systemd/iq-hub.service", import.meta.url));

/**
 * How the unit runs node, read from one reading of the unit file: the flags in its ExecStart
 * (`@NODE@ <flags> @PREFIX@/…`) and the allocator settings (`MALLOC_*`) among its `Environment=`
 * lines (the rest is the installed config's). The bench runs the hub as systemd does.
 */
function unitRuntime(): { flags: string[]; env: Record<string, string> } {
  const unit = readFileSync(UNIT_FILE, "utf8");
  const execStart = /^ExecStart=@NODE@ (.*?)\s*@PREFIX@\//m.exec(unit);
  if (execStart === null) throw new Error(`no ExecStart=@NODE@ … @PREFIX@/ line in ${UNIT_FILE}`);
  const assignments = [...unit.matchAll(/^Environment=(.*)$/gm)].flatMap((line) => line[1]!.split(/\s+/));
  const env: Record<string, string> = {};
  for (const pair of assignments.filter((assignment) => assignment.startsWith("MALLOC_"))) env[pair.slice(0, pair.indexOf("="))] = pair.slice(pair.indexOf("=") + 1);
  return { flags: execStart[1]!.split(/\s+/).filter((flag) => flag !== ""), env };
}
/** Configured rather than read back from the retained state: the bench knows its topics up front. */
export const BENCH_IQ_ID = "bench-iq";
const STOP_TIMEOUT_MS = 5_000;
const BROKER_START_TIMEOUT_MS = 5_000;
/** Lines of stderr kept to explain a process that failed. */
const KEPT_LINES = 200;

const running = new Set<ChildProcess>();
process.once("exit", () => running.forEach((child) => child.kill("SIGKILL")));

/** A started child process whose stderr is read line by line. */
export class Watched {
  private readonly lines: { text: string; at: number }[] = [];
  private partial = "";
  private readonly listeners = new Set<() => void>();
  private readonly exited: Promise<void>;
  private exitReason: string | undefined;

  private constructor(
    private readonly child: ChildProcess,
    private readonly what: string,
    readonly startedAt: number,
    private readonly cleanup: () => void,
    /** The process's own directory (a hub's: config and state), if it has one. */
    readonly dir: string | undefined,
  ) {
    running.add(child);
    // Read stderr to the end, always: a process blocked on a full pipe would look slow.
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => this.onStderr(chunk));
    this.exited = new Promise((resolve) => {
      const done = (reason: string) => {
        this.exitReason ??= reason;
        running.delete(child);
        this.notify();
        resolve();
      };
      // "close", not "exit": its stderr has been read to the end by then (a last line may say why).
      child.once("close", (code, signal) => done(signal === null ? `exit code ${code}` : `signal ${signal}`));
      child.once("error", (error) => done(error.message));
    });
  }

  /** `dir` is removed when the process is stopped, unless `keepDir`. */
  static spawn(what: string, file: string, args: string[], env: NodeJS.ProcessEnv, dir?: string, keepDir = false): Watched {
    const startedAt = performance.now();
    const child = spawn(file, args, { env, stdio: ["ignore", "ignore", "pipe"] });
    const cleanup = () => dir !== undefined && !keepDir && rmSync(dir, { recursive: true, force: true });
    return new Watched(child, what, startedAt, cleanup, dir);
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${this.what} did not start: ${this.exitReason ?? "no pid"}`);
    return this.child.pid;
  }

  /** ms from spawn until a stderr line matches; rejects when the process ends or `timeoutMs` passes first. */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const line = this.lines.find(({ text }) => pattern.test(text));
        if (line !== undefined) finish(() => resolve(line.at - this.startedAt));
        else if (this.exitReason !== undefined) finish(() => reject(this.failure(`ended (${this.exitReason}) before logging ${pattern}`)));
      };
      const timer = setTimeout(() => finish(() => reject(this.failure(`logged no ${pattern} within ${timeoutMs} ms`))), timeoutMs);
      const finish = (settle: () => void) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        settle();
      };
      this.listeners.add(check);
      check();
    });
  }

  /** The last kept stderr line that matches, as a match (its groups), if any. */
  lastMatch(pattern: RegExp): RegExpExecArray | undefined {
    for (let i = this.lines.length - 1; i >= 0; i--) {
      const match = pattern.exec(this.lines[i]!.text);
      if (match !== null) return match;
    }
    return undefined;
  }

  /** Resolves once `port` on loopback accepts connections; rejects when the process ends first. */
  async waitForPort(port: number, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!(await accepts(port))) {
      if (this.exitReason !== undefined) throw this.failure(`ended (${this.exitReason}) before listening on port ${port}`);
      if (performance.now() > deadline) throw this.failure(`did not listen on port ${port} within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Throws, quoting the process's last words, once it has ended. */
  assertRunning(): void {
    if (this.exitReason !== undefined) throw this.failure(`ended (${this.exitReason})`);
  }

  /** The resident set size now, from /proc (Linux only). */
  rssMiB(): number {
    let status: string;
    try {
      status = readFileSync(`/proc/${this.pid}/status`, "utf8");
    } catch (error) {
      throw new Error(`cannot read the ${this.what}'s memory: ${(error as Error).message} (RSS is read from /proc, Linux only)`);
    }
    const kB = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
    if (kB === undefined) throw new Error(`no VmRSS in /proc/${this.pid}/status`);
    return Number(kB) / 1024;
  }

  /** SIGTERM, then ms until the process has exited (SIGKILL after STOP_TIMEOUT_MS); cleans up its files. */
  async stop(): Promise<number> {
    const start = performance.now();
    if (this.exitReason === undefined) {
      this.child.kill("SIGTERM");
      const timer = setTimeout(() => this.child.kill("SIGKILL"), STOP_TIMEOUT_MS);
      await this.exited;
      clearTimeout(timer);
    }
    this.cleanup();
    return performance.now() - start;
  }

  private onStderr(chunk: string): void {
    const at = performance.now();
    const parts = (this.partial + chunk).split("\n");
    this.partial = parts.pop() ?? "";
    this.lines.push(...parts.map((text) => ({ text, at })));
    this.lines.splice(0, Math.max(0, this.lines.length - KEPT_LINES));
    this.notify();
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  /** An error naming the process and quoting its last words, which usually say why. */
  private failure(what: string): Error {
    const tail = this.lines.slice(-3).map(({ text }) => text.trim()).filter((text) => text !== "");
    return new Error(`${this.what} ${what}${tail.length > 0 ? `; its last lines: ${tail.join(" | ")}` : ""}`);
  }
}

/** An external broker, or the port of the embedded one the hub starts itself. */
export type HubBroker = { brokerUrl: string } | { embeddedPort: number };

/** The state directory of a hub started in `dir` (see spawnHub). */
export const hubStateDir = (dir: string): string => join(dir, "state");

/**
 * Starts `node dist/firmware/main.js` on mock GPIO with its own config file, so that neither
 * /etc/iq-hub/config.json nor the caller's IQ_HUB_* variables change what is measured. By default
 * in a fresh directory (a new IQ, so every start creates its device key and setup secret), removed
 * when the hub stops; with `reuseDir`, in the directory of an earlier hub (the same IQ restarted),
 * which the caller removes.
 */
export function spawnHub(broker: HubBroker, extraEnv: Record<string, string> = {}, reuseDir?: string): Watched {
  if (!existsSync(HUB_ENTRY)) throw new Error(`${HUB_ENTRY} is missing: run npm run build`);
  const dir = reuseDir ?? mkdtempSync(join(tmpdir(), "iq-bench-hub-"));
  const configFile = join(dir, "config.json");
  // The bench reads the info-level "state" lines; a config file of its own fixes the level.
  writeFileSync(configFile, JSON.stringify({ log: { level: "info" } }));
  const runtime = unitRuntime();
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    IQ_HUB_CONFIG: configFile,
    IQ_HUB_STATE_DIR: hubStateDir(dir),
    IQ_HUB_GPIO__BACKEND: "mock",
    IQ_HUB_IQ_ID: BENCH_IQ_ID,
    ...("brokerUrl" in broker ? { IQ_HUB_MQTT__URL: broker.brokerUrl } : { IQ_HUB_MQTT__EMBEDDED_PORT: String(broker.embeddedPort) }),
    // Off unless asked for: a bench on a laptop with bluetoothd must not advertise.
    IQ_HUB_BLE__ENABLED: "false",
    ...runtime.env,
    ...extraEnv,
  };
  return Watched.spawn("the hub", process.execPath, [...runtime.flags, HUB_ENTRY], env, dir, reuseDir !== undefined);
}

/** mosquitto (see mosquittoConfig), watched like the hub; the tests' broker too. */
export async function spawnMosquitto(path: string, port: number, listenerOptions: readonly string[] = []): Promise<Watched> {
  const dir = mkdtempSync(join(tmpdir(), "iq-mosquitto-"));
  const conf = join(dir, "mosquitto.conf");
  writeFileSync(conf, mosquittoConfig(port, listenerOptions));
  const broker = Watched.spawn("mosquitto", path, ["-c", conf], process.env, dir);
  try {
    await broker.waitForPort(port, BROKER_START_TIMEOUT_MS);
  } catch (error) {
    await broker.stop();
    throw error;
  }
  return broker;
}

