import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Store } from "../../firmware/store.js";
import { editRaw, openStore, tempStateDir, TEST_DEVICE_KEY, type RawSublevel } from "./temp-state.js";

/** Reopens the store at `dir` and checks its seal; resolves to the error, if any. */
async function reopen(dir: string, key: Uint8Array = TEST_DEVICE_KEY.slice()): Promise<unknown> {
  const store = await Store.open(dir);
  try {
    await store.protect(key);
    return undefined;
  } catch (error) {
    return error;
  } finally {
    await store.close();
  }
}

async function sealedStore(): Promise<string> {
  const dir = tempStateDir();
  const store = await openStore(dir);
  await store.commit([
    { type: "put", in: "users", key: "u-1", value: { userId: "u-1", role: "user" } },
    { type: "put", in: "lockout", key: "u-1", value: { failuresInARow: 5 } },
    { type: "put", in: "meta", key: "claimed", value: true },
  ]);
  await store.close();
  return dir;
}

describe("the store's integrity seal", () => {
  it("an empty store starts with an empty seal, and reopens", async () => {
    const dir = tempStateDir();
    expect(await (await openStore(dir)).protect(TEST_DEVICE_KEY.slice())).toEqual({ records: 0 });
    await (await Store.open(dir).catch(() => undefined))?.close();
    expect(await reopen(tempStateDir())).toBeUndefined();
  });

  it("follows every write, delete and batch (also two writes to one key in a batch), across reopening", async () => {
    const dir = await sealedStore();
    const store = await openStore(dir);
    await store.put("webbudget", "u-1", [1, 2]);
    await store.del("lockout", "u-1");
    await store.commit([
      { type: "put", in: "users", key: "u-2", value: { role: "admin" } },
      { type: "del", in: "users", key: "u-2" },
      { type: "put", in: "users", key: "u-3", value: { role: "user" } },
      { type: "put", in: "events", key: "000000000000001", value: { seq: 1 } },
    ]);
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.put("lockout", `u-${i}`, { n: i })));
    await store.close();
    expect(await reopen(dir)).toBeUndefined();
  });

  it("the audit trail is outside the seal: events may be trimmed and acknowledged without it", async () => {
    const dir = await sealedStore();
    await editRaw(dir, (level) => level("outbox").put("000000000000009", { seq: 9 }));
    expect(await reopen(dir)).toBeUndefined();
  });

  const cases: [string, (level: (name: string) => RawSublevel) => Promise<void>, RegExp][] = [
    ["an edited role", (level) => level("users").put("u-1", { userId: "u-1", role: "owner" }), /users: a record was changed/],
    ["a deleted lockout", (level) => level("lockout").del("u-1"), /lockout: 1 record fewer than sealed/],
    ["an added user", (level) => level("users").put("u-9", { role: "owner" }), /users: 1 record more than sealed/],
    ["a value moved to another key", async (level) => {
      await level("lockout").put("u-2", await level("lockout").get("u-1"));
      await level("lockout").del("u-1");
    }, /lockout: a record was changed/],
    ["the claim undone", (level) => level("meta").del("claimed"), /meta: 1 record fewer/],
    ["the seal deleted", (level) => level("seal").clear(), /seal record itself is missing/],
  ];
  for (const [name, edit, finding] of cases) {
    it(`refuses ${name}, naming it`, async () => {
      const dir = await sealedStore();
      await editRaw(dir, edit);
      const error = (await reopen(dir)) as { code: string; message: string };
      expect(error.code).toBe("store_tampered");
      expect(error.message).toMatch(finding);
      expect(error.message).toMatch(/restore the state directory/);
    });
  }

  it("refuses one record rolled back to an older, once valid value, and a sublevel taken from an older copy", async () => {
    const dir = await sealedStore();
    const older = await copyOf(dir);
    const store = await openStore(dir);
    await store.put("lockout", "u-1", { failuresInARow: 9 });
    await store.put("users", "u-2", { role: "user" });
    await store.close();
    // The lockout record alone, and the lockout record with the seal of its time.
    await editRaw(dir, (level) => level("lockout").put("u-1", older.lockout));
    const error = (await reopen(dir)) as Error;
    expect(error).toMatchObject({ code: "store_tampered" });
    expect(error.message).toMatch(/lockout: a record was changed, or put back/);
    await editRaw(dir, (level) => level("seal").put("set", older.seal));
    expect(await reopen(dir)).toMatchObject({ code: "store_tampered" });
  });

  it("cannot tell a whole older copy of db/ (the documented limit)", async () => {
    const dir = await sealedStore();
    const older = await copyOf(dir);
    const store = await openStore(dir);
    await store.put("lockout", "u-1", { failuresInARow: 9 });
    await store.close();
    await editRaw(dir, async (level) => {
      await level("lockout").put("u-1", older.lockout);
      await level("seal").put("set", older.seal);
    });
    expect(await reopen(dir)).toBeUndefined();
  });

  it("refuses the store under another device key", async () => {
    expect(await reopen(await sealedStore(), randomBytes(32))).toMatchObject({ code: "store_tampered" });
  });

  it("refuses a protected write before the seal is checked, and starts a new seal after a wipe", async () => {
    const dir = await sealedStore();
    const store = await Store.open(dir);
    await expect(store.put("users", "u-2", {})).rejects.toThrow(/before the store was unlocked/);
    await store.protect(TEST_DEVICE_KEY.slice());
    await store.wipeForReset();
    await expect(store.put("users", "u-2", {})).rejects.toThrow(/before the store was unlocked/);
    const newKey = randomBytes(32);
    await store.protect(newKey);
    await store.put("meta", "iqId", "iq-1");
    await store.close();
    expect(await reopen(dir, newKey)).toBeUndefined();
  });

  it("checks 10,000 users with their PINs and lockouts well under a second", async () => {
    const dir = tempStateDir();
    const store = await openStore(dir);
    const sealedPin = { v: 1, sealed: randomBytes(60).toString("base64") };
    for (let batch = 0; batch < 100; batch++) {
      await store.commit(
        Array.from({ length: 100 }, (_, i) => `u-${String(batch * 100 + i).padStart(12, "0")}`).flatMap((id) => [
          { type: "put" as const, in: "users" as const, key: id, value: { userId: id, name: `User ${id}`, role: "user", createdAt: new Date().toISOString() } },
          { type: "put" as const, in: "secrets" as const, key: `pin:${id}`, value: sealedPin },
          { type: "put" as const, in: "lockout" as const, key: id, value: { failuresInARow: 1, blocks: 0, blockedUntil: 0, lastFailureAt: 0, disabled: false } },
        ]),
      );
    }
    await store.close();
    const again = await Store.open(dir);
    const startedAt = performance.now();
    const cpuBefore = process.cpuUsage();
    const { records } = await again.protect(TEST_DEVICE_KEY.slice());
    const { user, system } = process.cpuUsage(cpuBefore);
    const ms = performance.now() - startedAt;
    await again.close();
    expect(records).toBe(30_000);
    // CPU time, not wall time: on a shared 2-core box other processes stretch the wall clock.
    const cpuMs = (user + system) / 1_000;
    console.info(`seal check of ${records} records (10,000 users, PINs, lockouts): ${ms.toFixed(0)} ms, ${cpuMs.toFixed(0)} ms CPU`);
    expect(cpuMs).toBeLessThan(1_000);
  });
});

/** The current lockout record and seal, as raw JSON: what an older copy of the card holds. */
async function copyOf(dir: string): Promise<{ lockout: unknown; seal: unknown }> {
  let copy = { lockout: undefined as unknown, seal: undefined as unknown };
  await editRaw(dir, async (level) => {
    copy = { lockout: await level("lockout").get("u-1"), seal: await level("seal").get("set") };
  });
  return copy;
}
