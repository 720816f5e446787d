import { describe, expect, it, vi } from "vitest";
import { LOCKOUT, Lockout } from "../../firmware/lockout.js";
import type { Store } from "../../firmware/store.js";
import { openStore, tempStateDir } from "./temp-state.js";

const START = Date.UTC(2025, 0, 1);
const S = 1_000;

/** A Lockout over a real store with a clock the test moves by hand. */
async function setup(stateDir = tempStateDir()) {
  const clock = { t: START };
  const store = await openStore(stateDir);
  const lockout = new Lockout(store, () => clock.t);
  return { clock, store, lockout, stateDir };
}

async function fail(lockout: Lockout, user: string, times: number) {
  let status = await lockout.check(user);
  for (let i = 0; i < times; i++) status = await lockout.recordFailure(user);
  return status;
}

describe("Lockout", () => {
  it("keeps the parameters of the documented schedule", () => {
    expect(LOCKOUT).toMatchObject({ wrongEntryLimit: 5, firstBlockMs: 30 * S, disableAfter: 10 });
  });

  it("lets four wrong attempts pass and blocks for 30 s at the fifth", async () => {
    const { clock, lockout } = await setup();
    expect(await fail(lockout, "ana", 4)).toEqual({ allowed: true });
    expect(await lockout.recordFailure("ana")).toEqual({ allowed: false, reason: "blocked", until: START + 30 * S });
    clock.t = START + 30 * S - 1;
    expect(await lockout.check("ana")).toMatchObject({ reason: "blocked" });
    clock.t = START + 30 * S;
    expect(await lockout.check("ana")).toEqual({ allowed: true });
  });

  it("doubles the block with each further wrong attempt", async () => {
    const { clock, lockout } = await setup();
    await fail(lockout, "ana", 4);
    const blocks: number[] = [];
    for (let i = 5; i <= 9; i++) {
      const status = await lockout.recordFailure("ana");
      if (status.allowed || status.reason !== "blocked") throw new Error(`attempt ${i}: ${JSON.stringify(status)}`);
      blocks.push((status.until - clock.t) / S);
      clock.t = status.until;
    }
    expect(blocks).toEqual([30, 60, 120, 240, 480]);
  });

  it("disables the credential at the tenth wrong attempt in a row, until the Owner clears it", async () => {
    const { clock, lockout } = await setup();
    expect(await fail(lockout, "ana", 9)).toMatchObject({ reason: "blocked" });
    expect(await lockout.recordFailure("ana")).toEqual({ allowed: false, reason: "disabled" });
    clock.t += 365 * 24 * 3_600 * S;
    expect(await lockout.check("ana")).toEqual({ allowed: false, reason: "disabled" });
    await lockout.clear("ana");
    expect(await lockout.check("ana")).toEqual({ allowed: true });
    expect(await fail(lockout, "ana", 4)).toEqual({ allowed: true });
  });

  it("resets the count in a row on success, so nine wrong attempts after it do not disable", async () => {
    const { clock, lockout } = await setup();
    const blocked = await fail(lockout, "ana", 9);
    if (blocked.allowed || blocked.reason !== "blocked") throw new Error("not blocked");
    clock.t = blocked.until;
    await lockout.recordSuccess("ana");
    expect(await fail(lockout, "ana", 9)).toMatchObject({ reason: "blocked" });
    expect(await lockout.recordFailure("ana")).toMatchObject({ reason: "disabled" });
  });

  it("keeps the doubling across a success", async () => {
    const { clock, lockout } = await setup();
    await fail(lockout, "ana", 5);
    clock.t += 30 * S;
    await lockout.recordSuccess("ana");
    expect(await fail(lockout, "ana", 4)).toEqual({ allowed: true });
    expect(await lockout.recordFailure("ana")).toEqual({ allowed: false, reason: "blocked", until: clock.t + 60 * S });
  });

  it("forgets the doubling after a day without wrong attempts", async () => {
    const { clock, lockout } = await setup();
    await fail(lockout, "ana", 6);
    clock.t += 90 * S;
    await lockout.recordSuccess("ana");
    clock.t += LOCKOUT.forgetBlocksAfterMs;
    await fail(lockout, "ana", 4);
    expect(await lockout.recordFailure("ana")).toEqual({ allowed: false, reason: "blocked", until: clock.t + 30 * S });
  });

  it("never lets a block grow beyond the cap", async () => {
    const { clock, lockout } = await setup();
    // Runs of 9 wrong attempts separated by successes keep doubling without disabling.
    let longest = 0;
    for (let run = 0; run < 4; run++) {
      await fail(lockout, "ana", 4);
      for (let i = 0; i < 5; i++) {
        const status = await lockout.recordFailure("ana");
        if (status.allowed || status.reason !== "blocked") throw new Error("not blocked");
        longest = Math.max(longest, status.until - clock.t);
        clock.t = status.until;
      }
      await lockout.recordSuccess("ana");
    }
    expect(longest).toBe(LOCKOUT.maxBlockMs);
  });

  it("survives closing and reopening the store: a restart forgives nothing", async () => {
    const first = await setup();
    await fail(first.lockout, "ana", 5);
    await first.store.close();

    const second = await setup(first.stateDir);
    expect(await second.lockout.check("ana")).toEqual({ allowed: false, reason: "blocked", until: START + 30 * S });
    second.clock.t = START + 30 * S;
    expect(await second.lockout.recordFailure("ana")).toMatchObject({ until: START + 90 * S });
    expect(await fail(second.lockout, "ana", 4)).toEqual({ allowed: false, reason: "disabled" });
    await second.store.close();

    const third = await setup(first.stateDir);
    expect(await third.lockout.check("ana")).toEqual({ allowed: false, reason: "disabled" });
  });

  it("counts per user: one user's wrong attempts do not block another", async () => {
    const { lockout } = await setup();
    await fail(lockout, "ana", 10);
    expect(await lockout.check("ana")).toMatchObject({ reason: "disabled" });
    expect(await lockout.check("ben")).toEqual({ allowed: true });
  });

  it("refuses a blocked or disabled user without checking the PIN", async () => {
    const { clock, lockout } = await setup();
    await fail(lockout, "ana", 5);
    const verify = vi.fn(() => true);
    expect(await lockout.attempt("ana", verify)).toEqual({
      outcome: "refused",
      status: { allowed: false, reason: "blocked", until: START + 30 * S },
    });
    await fail(lockout, "ana", 5);
    clock.t += 365 * 24 * 3_600 * S;
    expect(await lockout.attempt("ana", verify)).toEqual({ outcome: "refused", status: { allowed: false, reason: "disabled" } });
    expect(verify).not.toHaveBeenCalled();
  });

  it("counts the outcome of an attempt", async () => {
    const { lockout } = await setup();
    for (let i = 0; i < 4; i++) expect(await lockout.attempt("ana", () => false)).toMatchObject({ outcome: "wrong" });
    expect(await lockout.attempt("ana", () => Promise.resolve(true))).toEqual({ outcome: "accepted" });
    for (let i = 0; i < 4; i++) await lockout.attempt("ana", () => false);
    expect(await lockout.attempt("ana", () => false)).toMatchObject({ outcome: "wrong", status: { reason: "blocked" } });
  });

  it("says how many wrong attempts are left before the block", async () => {
    const { lockout, clock } = await setup();
    const left: number[] = [];
    for (let i = 0; i < LOCKOUT.wrongEntryLimit; i++) {
      const result = await lockout.attempt("ana", () => false);
      if (result.outcome === "wrong") left.push(result.triesLeft);
    }
    expect(left).toEqual([4, 3, 2, 1, 0]);
    // Past the first block, the next wrong attempt blocks again at once.
    clock.t += LOCKOUT.firstBlockMs;
    expect(await lockout.attempt("ana", () => false)).toMatchObject({ outcome: "wrong", triesLeft: 0, status: { reason: "blocked" } });
  });

  it("lets no parallel attempt slip past the check before the failures are written", async () => {
    const { lockout } = await setup();
    const verify = vi.fn(() => false);
    const results = await Promise.all(Array.from({ length: 30 }, () => lockout.attempt("ana", verify)));
    expect(verify).toHaveBeenCalledTimes(LOCKOUT.wrongEntryLimit);
    expect(results.filter((r) => r.outcome === "refused")).toHaveLength(30 - LOCKOUT.wrongEntryLimit);
  });

  it("counts nothing when verify throws, and stays usable", async () => {
    const { lockout } = await setup();
    await expect(lockout.attempt("ana", () => Promise.reject(new Error("bug")))).rejects.toThrow("bug");
    expect(await fail(lockout, "ana", 4)).toEqual({ allowed: true });
  });

  it("writes nothing for a success on a clean slate, and removes the record once all is forgiven", async () => {
    const { clock, store, lockout } = await setup();
    await lockout.recordSuccess("ana");
    expect(await lockoutKeys(store)).toEqual([]);
    await fail(lockout, "ana", 2);
    await lockout.recordSuccess("ana");
    expect(await lockoutKeys(store)).toEqual([]);
    await fail(lockout, "ana", 5);
    clock.t += 30 * S;
    await lockout.recordSuccess("ana");
    expect(await lockoutKeys(store)).toEqual(["ana"]);
  });

  it("lets the Owner's PIN reset clear the lockout in the same batch as the new PIN", async () => {
    const { store, lockout } = await setup();
    await fail(lockout, "ana", 10);
    await store.commit([lockout.clearOp("ana"), { type: "put", in: "users", key: "ana", value: { pinVersion: 2 } }]);
    expect(await lockout.check("ana")).toEqual({ allowed: true });
  });

  it("fails closed on a record it cannot read", async () => {
    const { store, lockout } = await setup();
    await store.put("lockout", "ana", { failuresInARow: "many" });
    expect(await lockout.check("ana")).toEqual({ allowed: false, reason: "disabled" });
  });

  it("refuses a user id that is not a short string", async () => {
    const { lockout } = await setup();
    await expect(lockout.check("")).rejects.toThrow(TypeError);
    await expect(lockout.recordFailure("x".repeat(129))).rejects.toThrow(TypeError);
    await expect(lockout.check(7 as unknown as string)).rejects.toThrow(TypeError);
  });
});

async function lockoutKeys(store: Store): Promise<string[]> {
  return (await store.sublevel("lockout").keys().all()).map(String);
}
