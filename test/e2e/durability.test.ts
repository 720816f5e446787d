/**
 * Nothing is lost: events survive a broker outage and a `kill -9` of the hub, in order, with no
 * sequence number missing or used twice.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IqEvent } from "../../provisioning/app/companion.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { RELAY_PIN, startTestHub } from "../support/hub.js";
import { spawnHubProcess, type HubProcess } from "../support/hub-process.js";
import { Phones } from "./phones.js";
import { OWNER_PIN, until } from "./world.js";


let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(async () => {
  await broker.stop();
});


describe("broker outage", () => {
  it("stopped for 10 s while the door keeps being used: subscribers get every event in order", async () => {
    const iq = await startTestHub({ broker });
    const phones = new Phones(broker.url);
    try {
      // The owner's app follows the event stream as a phone would: live events, and any gap
      // (events published while it was not subscribed) filled from events.list.
      const received: IqEvent[] = [];
      const owner = await phones.phone("owner");
      await owner.app.claim({ iqId: iq.iqId, setupSecret: iq.setupSecret(), name: "Alice", pin: OWNER_PIN });
      const stopFollowing = await owner.app.followEvents({
        iqId: iq.iqId,
        onEvent: (event) => received.push(event),
        onError: () => undefined,
      });
      await until(() => received.length >= 1, 5_000, "the claimed event");

      await broker.stop();
      // The owner's phone is next to the door: it opens, and adds a user, without the broker.
      const nearby = phones.nearby("owner", iq.hub);
      for (let i = 0; i < 5; i++) {
        await nearby.open({ iqId: iq.iqId, pin: OWNER_PIN });
        await new Promise((resolve) => setTimeout(resolve, 1_500));
      }
      await nearby.addUser({ iqId: iq.iqId, pin: OWNER_PIN, name: "Bob", role: "user" });
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      expect(iq.hub.lifecycle.snapshot().brokerConnected).toBe(false);
      await broker.restart();
      await until(() => iq.hub.lifecycle.snapshot().brokerConnected === true, 10_000, "the hub to reconnect");
      await owner.app.open({ iqId: iq.iqId, pin: OWNER_PIN });

      const total = iq.hub.events.lastSequence;
      expect(total).toBeGreaterThanOrEqual(7);
      await until(() => new Set(received.map((e) => e.seq)).size >= total, 15_000, "every event after the outage");
      expect(received.map((e) => e.seq)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      expect(received.filter((e) => e.type === "opened")).toHaveLength(6);
      // The outbox empties as the broker acknowledges.
      let pending = -1;
      const outbox = async () => (pending = (await iq.hub.events.pending()).length);
      for (let i = 0; i < 100 && (await outbox()) > 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(pending).toBe(0);
      expect(iq.gpio.timeline.filter((w) => w.bcm === RELAY_PIN && w.level === 1).length).toBeGreaterThanOrEqual(1);
      await stopFollowing();
    } finally {
      await phones.close();
      await iq.stop();
    }
  });
});

function spawnHub(stateDir: string, iqId: string): HubProcess {
  return spawnHubProcess({
    IQ_HUB_STATE_DIR: stateDir,
    IQ_HUB_IQ_ID: iqId,
    IQ_HUB_MQTT__URL: broker.url,
    IQ_HUB_MQTT__PROTOCOL_VERSION: String(broker.protocolVersion),
    IQ_HUB_GPIO__BACKEND: "mock",
    IQ_HUB_CLOCK__ASSUME_SYNCED: "true",
    IQ_HUB_LOCKS: JSON.stringify([{ name: "door", pin: 27, pulseMs: 100 }]),
  });
}

describe("kill -9", () => {
  it("during a burst of 100 opens: every pulse has its event, no sequence number missing or reused, the store opens", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "iq-kill-"));
    const iqId = `iq-kill-${Date.now().toString(36)}`;
    const phones = new Phones(broker.url);
    let first: HubProcess | undefined = spawnHub(stateDir, iqId);
    try {
      await first.waitFor(/connected to the MQTT broker/, 10_000);
      const owner = await phones.phone("owner");
      const secret = readFileSync(join(stateDir, "setup-secret"), "utf8").trim();
      await owner.app.claim({ iqId, setupSecret: secret, name: "Alice", pin: OWNER_PIN });

      let acknowledged = 0;
      const burst = (async () => {
        for (let i = 0; i < 100; i++) {
          try {
            await owner.app.open({ iqId, pin: OWNER_PIN });
            acknowledged += 1;
          } catch {
            return; // the hub is gone
          }
        }
      })();
      await until(() => acknowledged >= 30, 20_000, "30 opens");
      first.child.kill("SIGKILL");
      await first.exited;
      const pulsesSeen = (first.output().match(/state=opening/g) ?? []).length;
      first = undefined;
      await burst;

      const second = spawnHub(stateDir, iqId);
      try {
        await second.waitFor(/connected to the MQTT broker/, 10_000);
        const events = [];
        for (let page = await owner.app.events({ iqId }); page.length > 0; page = await owner.app.events({ iqId, afterSeq: events.at(-1)!.seq })) {
          events.push(...page);
        }
        const seqs = events.map((e) => e.seq);
        expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
        const opened = events.filter((e) => e.type === "opened").length;
        // Each acknowledged open was recorded before its answer; at most one more was in flight.
        expect(opened).toBeGreaterThanOrEqual(acknowledged);
        expect(opened).toBeLessThanOrEqual(acknowledged + 1);
        // A pulse starts only after its event is on disk: never more pulses than events.
        expect(pulsesSeen).toBeLessThanOrEqual(opened);
        await owner.app.open({ iqId, pin: OWNER_PIN });
        const after = await owner.app.events({ iqId, afterSeq: seqs.at(-1)!, limit: 10 });
        expect(after.map((e) => [e.seq, e.type])).toEqual([[seqs.at(-1)! + 1, "opened"]]);
      } finally {
        second.child.kill("SIGTERM");
        expect(await second.exited).toBe(0);
      }
    } finally {
      first?.child.kill("SIGKILL");
      await phones.close();
    }
  });
});
