import { describe, expect, it, onTestFinished } from "vitest";
import { Audit, type AuditEvent } from "../../../firmware/audit.js";
import { createLogger } from "../../../firmware/log.js";
import { OutboxSender } from "../../../firmware/transports/outbox-sender.js";
import { eventually } from "../../support/mqtt.js";
import { openStore, tempStateDir } from "../temp-state.js";

async function auditWithOpenings(count: number): Promise<Audit> {
  const audit = await Audit.open(await openStore(tempStateDir()), 10_000);
  for (let i = 0; i < count; i += 1) await audit.record({ type: "door.opened", source: "system" });
  return audit;
}

function startSender(audit: Audit, publish: (event: AuditEvent) => Promise<void>, logs: string[] = []): OutboxSender {
  const sender = new OutboxSender({ audit, publish, log: createLogger({ level: "warn", write: (line) => logs.push(line) }), retryMs: 50 });
  sender.start();
  onTestFinished(() => sender.stop());
  return sender;
}

describe("the event outbox sender", () => {
  it("no more than the window of events is unacknowledged at a time", async () => {
    const audit = await auditWithOpenings(20);
    const acks: (() => void)[] = [];
    const published: number[] = [];
    const sender = startSender(audit, (event) => {
      published.push(event.seq);
      return new Promise((resolve) => acks.push(resolve));
    });

    sender.resume(4);
    await eventually(() => expect(published).toEqual([1, 2, 3, 4]));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(published).toHaveLength(4);

    acks.splice(0, 2).forEach((ack) => ack());
    await eventually(() => expect(published).toEqual([1, 2, 3, 4, 5, 6]));
    await eventually(async () => expect((await audit.pending()).map((event) => event.seq)[0]).toBe(3));
  });

  it("an event the broker refuses is sent again from the outbox head after a pause, so none is skipped", async () => {
    const audit = await auditWithOpenings(10);
    const published: number[] = [];
    const logs: string[] = [];
    let refused = false;
    const sender = startSender(
      audit,
      (event) => {
        published.push(event.seq);
        if (event.seq !== 3 || refused) return Promise.resolve();
        refused = true;
        return Promise.reject(new Error("Publish error: Quota exceeded"));
      },
      logs,
    );

    sender.resume(4);

    await eventually(async () => expect(await audit.pending()).toEqual([]));
    expect([...new Set(published)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(published.filter((seq) => seq === 3)).toHaveLength(2);
    expect(logs.some((line) => line.includes("event not acknowledged") && line.includes("Quota exceeded"))).toBe(true);
  });

  it("nothing is sent while paused; resuming sends the outbox from its head", async () => {
    const audit = await auditWithOpenings(3);
    const published: number[] = [];
    const sender = startSender(audit, (event) => {
      published.push(event.seq);
      return new Promise(() => undefined);
    });
    sender.resume(8);
    await eventually(() => expect(published).toEqual([1, 2, 3]));

    sender.pause();
    await audit.record({ type: "door.opened", source: "system" });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(published).toEqual([1, 2, 3]);

    sender.resume(8);
    await eventually(() => expect(published).toEqual([1, 2, 3, 1, 2, 3, 4]));
  });
});
