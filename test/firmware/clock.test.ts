import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { isClockSynced, runCommand, TrustedClock, type CommandRunner, type TrustedTimeStore } from "../../firmware/clock.js";
import { createLogger } from "../../firmware/log.js";

const log = createLogger({ write: () => {} });

describe("isClockSynced", () => {
  let dir: string;
  let flagFile: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "iq-hub-clock-"));
    flagFile = join(dir, "synchronized");
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const answering = (stdout: string): CommandRunner => vi.fn(() => Promise.resolve(stdout));
  const absent: CommandRunner = () => Promise.reject(Object.assign(new Error("spawn timedatectl ENOENT"), { code: "ENOENT" }));

  it("timesyncd's flag file means synchronised, without asking timedatectl", async () => {
    await writeFile(flagFile, "");
    const run = answering("no\n");
    expect(await isClockSynced({ flagFile, run })).toBe(true);
    expect(run).not.toHaveBeenCalled();
  });

  it("without the flag file, timedatectl's NTPSynchronized decides", async () => {
    const run = answering("yes\n");
    expect(await isClockSynced({ flagFile, run })).toBe(true);
    expect(run).toHaveBeenCalledWith("timedatectl", ["show", "--property=NTPSynchronized", "--value"], expect.any(Number));
    expect(await isClockSynced({ flagFile, run: answering("no\n") })).toBe(false);
  });

  it("no timedatectl counts as not synchronised", async () => {
    expect(await isClockSynced({ flagFile, run: absent })).toBe(false);
  });

  it("assumeSynced declares the clock synchronised on a machine that cannot tell", async () => {
    expect(await isClockSynced({ flagFile, run: absent, assumeSynced: true })).toBe(true);
  });

  it("the real runner gives up on a command that hangs", async () => {
    const started = performance.now();
    await expect(runCommand("sleep", ["5"], 100)).rejects.toThrow();
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});

function memoryStore(initial?: number) {
  let value = initial;
  const store: TrustedTimeStore & { saves: number[] } = {
    saves: [],
    load: () => Promise.resolve(value),
    save: (ms) => {
      value = ms;
      store.saves.push(ms);
      return Promise.resolve();
    },
  };
  return store;
}

describe("TrustedClock", () => {
  afterEach(() => vi.useRealTimers());

  it("the last trusted time moves forward only while synchronised, and never back", async () => {
    let now = 1_000;
    let synced = true;
    const store = memoryStore();
    const clock = await TrustedClock.open({ store, log, now: () => now, checkSynced: () => Promise.resolve(synced) });
    expect(clock.synced).toBe(true);
    expect(clock.lastTrusted).toBe(1_000);

    now = 500;
    await clock.check();
    expect(clock.lastTrusted).toBe(1_000);

    now = 5_000;
    synced = false;
    await clock.check();
    expect(clock.synced).toBe(false);
    expect(clock.lastTrusted).toBe(1_000);

    synced = true;
    await clock.check();
    expect(clock.lastTrusted).toBe(5_000);
    expect(store.saves).toEqual([1_000, 5_000]);
  });

  it("starts from the saved time, so a clock behind it after a reboot moves nothing", async () => {
    const store = memoryStore(9_000);
    const clock = await TrustedClock.open({ store, log, now: () => 2_000, checkSynced: () => Promise.resolve(true) });
    expect(clock.lastTrusted).toBe(9_000);
    expect(store.saves).toEqual([]);
  });

  it("a store that cannot save leaves the clock working", async () => {
    const lines: string[] = [];
    const store: TrustedTimeStore = { load: () => Promise.resolve(undefined), save: () => Promise.reject(new Error("disk full")) };
    const clock = await TrustedClock.open({
      store,
      log: createLogger({ write: (line) => lines.push(line) }),
      now: () => 1_000,
      checkSynced: () => Promise.resolve(true),
    });
    expect(clock.synced).toBe(true);
    expect(clock.lastTrusted).toBe(1_000);
    expect(lines.join("\n")).toContain("disk full");
  });

  it("watch calls back when the state flips, not on every poll, and stops", async () => {
    vi.useFakeTimers();
    let synced = false;
    const clock = await TrustedClock.open({ store: memoryStore(), log, checkSynced: () => Promise.resolve(synced) });
    const changes: boolean[] = [];
    const stop = clock.watch((value) => changes.push(value), 1_000);

    await vi.advanceTimersByTimeAsync(3_000);
    expect(changes).toEqual([]);
    synced = true;
    await vi.advanceTimersByTimeAsync(999);
    expect(changes).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(changes).toEqual([true]);
    expect(clock.synced).toBe(true);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(changes).toEqual([true]);

    stop();
    synced = false;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(changes).toEqual([true]);
  });

  it("a listener that throws is logged and the polling goes on", async () => {
    vi.useFakeTimers();
    const lines: string[] = [];
    let synced = false;
    const clock = await TrustedClock.open({
      store: memoryStore(),
      log: createLogger({ write: (line) => lines.push(line) }),
      checkSynced: () => Promise.resolve(synced),
    });
    const changes: boolean[] = [];
    const stop = clock.watch((value) => {
      changes.push(value);
      throw new Error("listener broke");
    }, 1_000);
    synced = true;
    await vi.advanceTimersByTimeAsync(1_000);
    synced = false;
    await vi.advanceTimersByTimeAsync(1_000);
    stop();
    expect(changes).toEqual([true, false]);
    expect(lines.join("\n")).toContain("listener broke");
  });
});
