/**
 * The built hub as a process of its own (`node dist/firmware/main.js`), for the tests that must
 * see what a real start, SIGTERM or `kill -9` does. Everything it prints is kept.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";

const MAIN = join(import.meta.dirname, "../../dist/firmware/main.js");

export interface HubProcess {
  child: ChildProcess;
  /** All it printed so far (stdout and stderr). */
  output(): string;
  /** Its exit status (null when ended by a signal). */
  exited: Promise<number | null>;
  /** ms from spawn until the output matches; throws with the output when it ends or times out first. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<number>;
}

/** `env` is the whole environment (BLE off unless it says so): nothing of the test runner's IQ_HUB_* leaks in. `as`: another user to run it as (root only). */
export function spawnHubProcess(env: Record<string, string>, as?: { uid: number; gid: number }): HubProcess {
  const startedAt = performance.now();
  // BLE off unless a test turns it on: a hub under test must not advertise on this machine's real adapter.
  const child = spawn(process.execPath, [MAIN], { env: { PATH: process.env.PATH ?? "", IQ_HUB_BLE__ENABLED: "false", ...env }, stdio: ["ignore", "pipe", "pipe"], ...as });
  let output = "";
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return {
    child,
    output: () => output,
    exited,
    async waitFor(pattern, timeoutMs) {
      const deadline = performance.now() + timeoutMs;
      while (!pattern.test(output)) {
        if (performance.now() > deadline || child.exitCode !== null) throw new Error(`no ${pattern} in:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      return performance.now() - startedAt;
    },
  };
}
