/**
 * Issue 10: a state directory that is full or read-only, on a real file system (a small tmpfs,
 * so ENOSPC and EROFS come from the kernel). The hub refuses with `storage_failed` and says why
 * in its log, every door locks (Office Mode ends), no relay moves without its record, no PIN is
 * checked that could not be counted, a Code whose use could not be written is not spent, and once
 * there is room again everything stored before is there, with a gap-free event log.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { spawnHubProcess } from "../support/hub-process.js";
import { RELAY_PIN, startTestHub, type TestHub } from "../support/hub.js";
import { mountTmpfs, tmpfsUnavailable, type Tmpfs } from "../support/tmpfs.js";
import { eventsOf } from "./attacker.js";
import { Phones, refusal } from "./phones.js";
import { BOB_PIN, OWNER_PIN } from "./world.js";

/** Outside CI a machine that cannot mount skips this file, saying why; in CI it runs and fails. */
const unavailable = process.env.CI === "true" ? undefined : tmpfsUnavailable();
if (unavailable !== undefined) process.stderr.write(`storage-full tests skipped: ${unavailable}\n`);

/** Room for the store of a few users and their events, and for reopening it once freed (REOPEN_MIN_FREE_BYTES). */
const TMPFS_KIB = 4096;

const mounts: Tmpfs[] = [];
const hubs: TestHub[] = [];
let phones: Phones | undefined;
afterEach(async () => {
  await Promise.all(hubs.splice(0).map((h) => h.stop()));
  mounts.splice(0).forEach((m) => m.unmount());
});

/** A hub whose state lives on a fresh tmpfs; its phones talk to it in process (no broker needed). */
async function hubOnTmpfs(): Promise<{ disk: Tmpfs; stateDir: string; iq: TestHub }> {
  const disk = mountTmpfs(TMPFS_KIB);
  mounts.push(disk);
  const stateDir = join(disk.dir, "state");
  mkdirSync(stateDir);
  return { disk, stateDir, iq: await restart(stateDir) };
}

async function restart(stateDir: string, iqId?: string): Promise<TestHub> {
  const iq = await startTestHub({ stateDir, ...(iqId !== undefined && { iqId }) });
  hubs.push(iq);
  return iq;
}

const unlocks = (iq: TestHub): number => iq.gpio.timeline.filter((w) => w.bcm === RELAY_PIN && w.level === 1).length;

describe.skipIf(unavailable !== undefined)("a full or read-only state directory", () => {
  it("full: storage_failed, doors locked, no PIN checked, the Code not spent; freed and restarted, nothing is lost", async () => {
    phones = new Phones("mqtt://127.0.0.1:1");
    const { disk, stateDir, iq } = await hubOnTmpfs();
    const owner = phones.nearby("owner", iq.hub);
    await owner.claim({ iqId: iq.iqId, setupSecret: iq.setupSecret(), name: "Alice", pin: OWNER_PIN });
    const added = await owner.addUser({ iqId: iq.iqId, pin: OWNER_PIN, name: "Bob", role: "user" });
    const bob = phones.nearby("bob", iq.hub);
    await bob.activate({ iqId: iq.iqId, userId: added.userId, pin: added.initialPin });
    await bob.changePin({ iqId: iq.iqId, pin: added.initialPin, newPin: BOB_PIN });
    const relayUser = await owner.addRelay({ iqId: iq.iqId, pin: OWNER_PIN, name: "cloud" });
    const web = phones.nearby("web", iq.hub);
    await web.activate({ iqId: iq.iqId, userId: relayUser.userId, pin: relayUser.initialPin });
    const ownerId = (await owner.whoami({ iqId: iq.iqId, pin: OWNER_PIN })).userId;
    await owner.office({ iqId: iq.iqId, pin: OWNER_PIN, on: true });
    expect(iq.hub.locks.get("door")!.isUnlocked).toBe(true);

    expect(disk.fill()).toBeGreaterThan(0);
    // LevelDB's log may still have room in its last page: Bob opens (a no-op while the door is
    // held, but recorded) until a write fails.
    let recorded = 0;
    let firstRefusal = "";
    for (let i = 0; i < 200 && firstRefusal === ""; i++) {
      try {
        await bob.open({ iqId: iq.iqId, pin: BOB_PIN });
        recorded += 1;
      } catch (error) {
        firstRefusal = (error as { code?: string }).code ?? String(error);
      }
    }
    expect(firstRefusal).toBe("storage_failed");
    const lastSeq = iq.hub.events.lastSequence;

    // The failed write locked the door: Office Mode could not be switched off any more (no PIN
    // is checked), and nothing it does could be recorded.
    expect(iq.hub.locks.get("door")!.isUnlocked).toBe(false);
    expect(iq.hub.status().locks).toEqual([{ name: "door", unlocked: false, officeMode: false }]);
    expect(await refusal(owner.office({ iqId: iq.iqId, pin: OWNER_PIN, on: false }))).toBe("storage_failed");
    // No free PIN guesses: a wrong PIN cannot be counted, so no PIN is checked (a right one costs
    // no write, and would otherwise answer where a wrong one could not).
    expect(await refusal(bob.whoami({ iqId: iq.iqId, pin: BOB_PIN }))).toBe("storage_failed");
    expect(await refusal(bob.whoami({ iqId: iq.iqId, pin: "135790" }))).toBe("storage_failed");
    // Nothing opens without its record: not Bob's PIN, not a web Code (whose use would be written with it).
    const unlocksBefore = unlocks(iq);
    expect(await refusal(bob.open({ iqId: iq.iqId, pin: BOB_PIN }))).toBe("storage_failed");
    const { code } = await owner.code({ iqId: iq.iqId, pin: OWNER_PIN });
    expect(await refusal(web.webOpen({ iqId: iq.iqId, userId: ownerId, code }))).toBe("storage_failed");
    expect(unlocks(iq)).toBe(unlocksBefore);
    expect(iq.hub.locks.get("door")!.isUnlocked).toBe(false);
    // Reads still work, and the log says what is wrong, once (later writes are not even tried).
    expect(await owner.status({ iqId: iq.iqId })).toMatchObject({ claimed: true });
    const storageLines = iq.logs.filter((l) => l.includes("cannot write the store"));
    expect(storageLines).toHaveLength(1);
    expect(storageLines[0]).toMatch(/level=error.*No space left on device/);
    expect(iq.logs.filter((l) => l.includes("internal_error") || l.includes("failed\" error="))).toEqual([]);
    expect(iq.hub.events.lastSequence).toBe(lastSeq);

    // Room again: the same hub works, and the Code that could not be spent is still good.
    disk.free();
    expect(await web.webOpen({ iqId: iq.iqId, userId: ownerId, code })).toMatchObject({ lock: "door" });
    expect(unlocks(iq)).toBe(unlocksBefore + 1);

    // Restarted on the same disk: every user, key and event from before is there, no seq missing.
    const iqId = iq.iqId;
    await iq.stop();
    const again = await restart(stateDir, iqId);
    const events = await eventsOf(again);
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: lastSeq + 1 }, (_, i) => i + 1));
    expect(events.filter((e) => e.type === "opened")).toHaveLength(recorded + 1);
    expect(events.filter((e) => e.type === "office_off")).toEqual([]);
    expect((await again.hub.users.list()).map((u) => u.name).sort()).toEqual(["Alice", "Bob", "cloud"]);
    const bobAgain = phones.nearby("bob", again.hub);
    expect(await bobAgain.open({ iqId, pin: BOB_PIN })).toMatchObject({ lock: "door" });
    expect(await again.hub.lockout.check(added.userId)).toEqual({ allowed: true });
    expect(await again.hub.store.get("lockout", added.userId)).toBeUndefined();
    expect(await phones.nearby("owner", again.hub).whoami({ iqId, pin: OWNER_PIN })).toMatchObject({ name: "Alice", role: "owner" });
  });

  it("read-only at start: the hub stops with store_unavailable, door locked; writable again, it starts with its state", async () => {
    phones = new Phones("mqtt://127.0.0.1:1");
    const { disk, stateDir, iq } = await hubOnTmpfs();
    const owner = phones.nearby("owner", iq.hub);
    await owner.claim({ iqId: iq.iqId, setupSecret: iq.setupSecret(), name: "Alice", pin: OWNER_PIN });
    const iqId = iq.iqId;
    await iq.stop();

    disk.readOnly();
    const hub = spawnHubProcess({ IQ_HUB_STATE_DIR: stateDir, IQ_HUB_IQ_ID: iqId, IQ_HUB_GPIO__BACKEND: "mock", IQ_HUB_MQTT__URL: "mqtt://127.0.0.1:1" });
    expect(await hub.exited).toBe(1);
    expect(hub.output()).toMatch(/fatal error: door locked, LED red.*Read-only file system.*\[store_unavailable\]/);

    disk.readWrite();
    const again = await restart(stateDir, iqId);
    expect(await phones.nearby("owner", again.hub).whoami({ iqId, pin: OWNER_PIN })).toMatchObject({ name: "Alice", role: "owner" });
  });
});
