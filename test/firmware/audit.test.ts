import { describe, expect, it } from "vitest";
import { Audit } from "../../firmware/audit.js";
import { Store } from "../../firmware/store.js";
import { openStore, tempStateDir } from "./temp-state.js";

describe("audit trail", () => {
  it("numbers events without gaps, and goes on after the store is reopened", async () => {
    const dir = tempStateDir();
    const first = await Store.open(dir);
    const audit = await Audit.open(first, 100);
    await Promise.all(Array.from({ length: 20 }, (_, i) => audit.record({ type: "opened", source: "app", user: `u${i}` })));
    await first.close();
    const store = await openStore(dir);
    const again = await Audit.open(store, 100);
    const next = await again.record({ type: "office_on", source: "web" });
    expect(next.seq).toBe(21);
    expect((await again.list({ limit: 500 })).map((e) => e.seq)).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
  });

  it("keeps only the newest maxEvents in the log, but every undelivered event in the outbox", async () => {
    const store = await openStore(tempStateDir());
    const audit = await Audit.open(store, 100);
    for (let i = 0; i < 150; i++) await audit.record({ type: "opened", source: "button" });
    const kept = await audit.list({ limit: 500 });
    expect(kept.map((e) => e.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i + 51));
    expect((await audit.pending(500)).length).toBe(150);
    audit.acknowledge(1);
    expect((await audit.pending(1))[0]?.seq).toBe(2);
    // The acknowledged event leaves the disk with the next event's batch, not in a write of its own.
    const onDisk = () => store.sublevel("outbox").keys({ limit: 1 }).all();
    expect(await onDisk()).toEqual(["000000000000001"]);
    await audit.record({ type: "opened", source: "button" });
    expect(await onDisk()).toEqual(["000000000000002"]);
  });

  it("a failing listener neither undoes nor blocks the recorded event", async () => {
    const store = await openStore(tempStateDir());
    const audit = await Audit.open(store, 100);
    audit.onRecord(() => {
      throw new Error("transport bug");
    });
    const event = await audit.record({ type: "lockout", source: "web", user: "u1", reason: "blocked" });
    expect(event).toMatchObject({ seq: 1, type: "lockout", reason: "blocked" });
    expect(await audit.list()).toHaveLength(1);
  });
});
