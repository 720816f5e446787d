import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createLogger } from "../../firmware/log.js";
import { createNotifier, type UnixDgram } from "../../firmware/sd-notify.js";

/** The receiving side of unix-dgram, which sd-notify.ts never needs. */
interface ReceivingSocket {
  bind(path: string): void;
  close(): void;
}
const unixDgram = createRequire(import.meta.url)("unix-dgram") as {
  createSocket(type: "unix_dgram", onMessage: (buf: Buffer) => void): ReceivingSocket;
};

function collectingLog() {
  const lines: string[] = [];
  return { log: createLogger({ level: "debug", write: (line) => lines.push(line), timestamps: false }), lines };
}

/** Plays systemd: a datagram socket bound to a temp path, collecting what arrives. */
async function fakeSystemd() {
  const dir = await mkdtemp(join(tmpdir(), "iq-hub-notify-"));
  const path = join(dir, "notify");
  const received: string[] = [];
  let arrived = () => {};
  const socket = unixDgram.createSocket("unix_dgram", (buf) => {
    received.push(buf.toString());
    arrived();
  });
  socket.bind(path);
  return {
    path,
    received,
    /** Resolves once `count` datagrams have arrived in all. */
    async until(count: number): Promise<string[]> {
      while (received.length < count) await new Promise<void>((resolve) => (arrived = resolve));
      return received.slice(0, count);
    },
    async close() {
      socket.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Records what would be sent, for timing tests under fake timers. */
function recordingDgram(sent: string[]): UnixDgram {
  return {
    createSocket: () => ({ send: (buf) => void sent.push(buf.toString()), close: () => {} }),
  };
}

describe("sd_notify", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    vi.useRealTimers();
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  it("READY, STATUS and STOPPING reach NOTIFY_SOCKET as datagrams", async () => {
    const systemd = await fakeSystemd();
    cleanups.push(() => systemd.close());
    const notifier = createNotifier(collectingLog().log, { NOTIFY_SOCKET: systemd.path });
    notifier.ready("unclaimed");
    notifier.status("broker\nunreachable");
    notifier.stopping();
    expect(await systemd.until(3)).toEqual(["READY=1\nSTATUS=unclaimed", "STATUS=broker unreachable", "STOPPING=1"]);
  });

  it("WATCHDOG=1 pings arrive until the watchdog is stopped", async () => {
    const systemd = await fakeSystemd();
    cleanups.push(() => systemd.close());
    const notifier = createNotifier(collectingLog().log, { NOTIFY_SOCKET: systemd.path, WATCHDOG_USEC: "40000" });
    const stop = notifier.startWatchdog();
    cleanups.push(stop);
    expect(await systemd.until(2)).toEqual(["WATCHDOG=1", "WATCHDOG=1"]);
    stop();
    await sleep(60);
    const count = systemd.received.length;
    notifier.status("probe");
    // Datagrams arrive in order: nothing sent after stop() may come before the probe.
    expect((await systemd.until(count + 1)).at(-1)).toBe("STATUS=probe");
    expect(systemd.received.slice(count)).toEqual(["STATUS=probe"]);
  });

  it("pings at half of WATCHDOG_USEC", async () => {
    vi.useFakeTimers();
    const sent: string[] = [];
    const env = { NOTIFY_SOCKET: "/run/systemd/notify", WATCHDOG_USEC: "30000000" };
    cleanups.push(createNotifier(collectingLog().log, env, () => recordingDgram(sent)).startWatchdog());
    await vi.advanceTimersByTimeAsync(14_999);
    expect(sent).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(sent).toEqual(["WATCHDOG=1"]);
    await vi.advanceTimersByTimeAsync(15_000);
    expect(sent).toEqual(["WATCHDOG=1", "WATCHDOG=1"]);
  });

  it("does not ping when WATCHDOG_PID names another process", async () => {
    vi.useFakeTimers();
    const sent: string[] = [];
    const env = { NOTIFY_SOCKET: "/run/systemd/notify", WATCHDOG_USEC: "2000000", WATCHDOG_PID: String(process.pid + 1) };
    cleanups.push(createNotifier(collectingLog().log, env, () => recordingDgram(sent)).startWatchdog());
    await vi.advanceTimersByTimeAsync(10_000);
    expect(sent).toEqual([]);
  });

  it("pings when WATCHDOG_PID is this process", async () => {
    vi.useFakeTimers();
    const sent: string[] = [];
    const env = { NOTIFY_SOCKET: "/run/systemd/notify", WATCHDOG_USEC: "2000000", WATCHDOG_PID: String(process.pid) };
    cleanups.push(createNotifier(collectingLog().log, env, () => recordingDgram(sent)).startWatchdog());
    await vi.advanceTimersByTimeAsync(1_000);
    expect(sent).toEqual(["WATCHDOG=1"]);
  });

  it("off systemd every call is a no-op, said once at debug level", () => {
    const { log, lines } = collectingLog();
    const load = vi.fn(() => recordingDgram([]));
    const notifier = createNotifier(log, {}, load);
    notifier.ready();
    notifier.stopping();
    notifier.startWatchdog()();
    expect(load).not.toHaveBeenCalled();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^level=debug .*no NOTIFY_SOCKET/);
  });

  it("under systemd without unix-dgram it says how to fix it, and does not throw", () => {
    const { log, lines } = collectingLog();
    const notifier = createNotifier(log, { NOTIFY_SOCKET: "/run/systemd/notify" }, () => {
      throw new Error("Cannot find module 'unix-dgram'");
    });
    notifier.ready();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^level=error .*unix-dgram is missing.*build-essential/);
  });

  it("an abstract NOTIFY_SOCKET is reported, not sent to a wrong address", () => {
    const { log, lines } = collectingLog();
    const sent: string[] = [];
    createNotifier(log, { NOTIFY_SOCKET: "@/org/freedesktop/systemd1/notify" }, () => recordingDgram(sent)).ready();
    expect(sent).toEqual([]);
    expect(lines[0]).toMatch(/^level=error .*abstract socket/);
  });

  it("a socket that is gone is a warning, not a crash", async () => {
    const { log, lines } = collectingLog();
    const dir = await mkdtemp(join(tmpdir(), "iq-hub-notify-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    createNotifier(log, { NOTIFY_SOCKET: join(dir, "gone") }).ready();
    expect(lines.some((line) => /^level=warn .*sd_notify failed.*READY=1/.test(line))).toBe(true);
  });
});
