/**
 * The stories over BLE, end to end with no broker: the real companion app (node-ble, a central)
 * ↔ a fake bluetoothd on a private system bus ↔ the real hub (dbus-next, a GATT peripheral) on
 * mock GPIO. Each test asserts what the door did (the relay pin), what the app got back, and the
 * audit events, which name BLE as the path.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../../provisioning/cli.js";
import type { AuditEvent } from "../../firmware/audit.js";
import { chunksFor } from "../../provisioning/protocol/ble-framing.js";
import { RELAY_PIN, type TestHub } from "../support/hub.js";
import { BLE_TESTS_RUN, bleWorld, CENTRALS } from "./ble-world.js";
import { refusal } from "./phones.js";
import { BOB_PIN, OWNER_PIN, until } from "./world.js";

const world = bleWorld();

async function events(iq: TestHub, type?: string): Promise<AuditEvent[]> {
  const all = await iq.hub.events.list({ limit: 500 });
  return type === undefined ? all : all.filter((e) => e.type === type);
}

const relayOpened = (iq: TestHub) => iq.gpio.timeline.some((w) => w.bcm === RELAY_PIN && w.level === 1);

describe.skipIf(!BLE_TESTS_RUN)("the stories over BLE", () => {
  it("claim, add a user, activation and opening with the PIN", async () => {
    const iq = await world.newHub();
    const { owner, bob, bobId } = await world.claimedWithBob(iq);
    expect(await events(iq, "claimed")).toMatchObject([{ source: "ble" }]);
    expect(await events(iq, "activated")).toMatchObject([{ source: "ble", user: bobId }]);
    await bob.app.open({ iqId: iq.iqId, pin: BOB_PIN });
    await until(() => relayOpened(iq));
    expect(await events(iq, "opened")).toMatchObject([{ source: "ble", user: bobId, lock: "door" }]);
    expect(await refusal(bob.app.open({ iqId: iq.iqId, pin: "999999" }))).toBe("pin_wrong");
    expect(await events(iq, "refused")).toMatchObject([{ source: "ble", reason: "pin_wrong", user: bobId }]);
    expect((await owner.app.whoami({ iqId: iq.iqId, pin: OWNER_PIN })).role).toBe("owner");
  });

  it("Office Mode on and off", async () => {
    const iq = await world.newHub();
    const { bob, bobId } = await world.claimedWithBob(iq);
    await bob.app.office({ iqId: iq.iqId, pin: BOB_PIN, on: true });
    expect(iq.gpio.level(RELAY_PIN)).toBe(1);
    expect((await bob.app.status({ iqId: iq.iqId })).locks).toEqual([{ name: "door", unlocked: true, officeMode: true }]);
    await bob.app.office({ iqId: iq.iqId, pin: BOB_PIN, on: false });
    expect(iq.gpio.level(RELAY_PIN)).toBe(0);
    expect((await events(iq)).filter((e) => e.type.startsWith("office")).map((e) => [e.type, e.source, e.user])).toEqual([
      ["office_on", "ble", bobId],
      ["office_off", "ble", bobId],
    ]);
  });

  it("a second device activates with the first device's Code and opens", async () => {
    const iq = await world.newHub();
    const { bob, bobId } = await world.claimedWithBob(iq);
    const invite = await bob.app.inviteDevice({ iqId: iq.iqId, pin: BOB_PIN });
    const tablet = world.phone("bob-tablet", "hci3");
    await tablet.app.joinAsDevice({ iqId: iq.iqId, userId: bobId, code: invite.code, pin: BOB_PIN });
    await tablet.app.open({ iqId: iq.iqId, pin: BOB_PIN });
    await until(() => relayOpened(iq));
    expect(await events(iq, "device_added")).toMatchObject([{ source: "ble", user: bobId }]);
    expect(await events(iq, "opened")).toMatchObject([{ source: "ble", user: bobId }]);
  });

  it("frames at MTU 23, 185 and 517: every chunk fits its link, large answers come back whole", async () => {
    const iq = await world.newHub();
    const { owner } = await world.claimedWithBob(iq);
    for (let i = 0; i < 5; i++) await owner.app.open({ iqId: iq.iqId, pin: OWNER_PIN });
    for (const central of ["hci1", "hci2", "hci3"] as const) {
      const reader = world.phone(`reader-${central}`, central);
      // Events pages are the largest answers (kilobytes): dozens of notifications at MTU 23.
      const listed = await reader.app.events({ iqId: iq.iqId });
      expect(listed.filter((e) => e.type === "opened")).toHaveLength(5);
      const writes = world.bluez().writes.filter((w) => w.adapter === central);
      expect(writes.length).toBeGreaterThan(0);
      expect(Math.max(...writes.map((w) => w.bytes))).toBeLessThanOrEqual(CENTRALS[central].mtu - 3);
    }
    // The owner's requests at MTU 23 (a sealed command is a few hundred bytes) took several chunks each.
    expect(world.bluez().writes.filter((w) => w.adapter === "hci1").length).toBeGreaterThan(5 * chunksFor(300, 23));
  });

  it("the iq CLI with --ble: claim and open, with no broker anywhere", async () => {
    const iq = await world.newHub();
    const home = mkdtempSync(join(tmpdir(), "iq-ble-cli-"));
    const iqCli = async (...args: string[]) => {
      let stdout = "";
      const status = await main(["--ble", "--iq", iq.iqId, "--json", ...args], {
        env: { IQ_HOME: home, IQ_BLE_ADAPTER: "hci3" },
        stdout: (text) => (stdout += text),
        stderr: (text) => (stdout += text),
        stop: AbortSignal.abort(),
        now: Date.now,
      });
      return { status, json: JSON.parse(stdout) as Record<string, unknown> };
    };
    expect(await iqCli("status")).toMatchObject({ status: 0, json: { iqId: iq.iqId, claimWindowOpen: true } });
    expect(await iqCli("claim", "--secret", iq.setupSecret(), "--name", "Alice", "--pin", OWNER_PIN)).toMatchObject({ status: 0, json: { role: "owner" } });
    expect(await iqCli("open", "--pin", OWNER_PIN)).toMatchObject({ status: 0, json: { lock: "door" } });
    await until(() => relayOpened(iq));
    expect(await iqCli("discover")).toMatchObject({ status: 1, json: { error: { code: "unsupported" } } });
  });

  it("two centrals at once", async () => {
    const iq = await world.newHub();
    const { owner, bob } = await world.claimedWithBob(iq);
    const results = await Promise.all([
      ...Array.from({ length: 4 }, () => owner.app.status({ iqId: iq.iqId })),
      ...Array.from({ length: 4 }, () => bob.app.status({ iqId: iq.iqId })),
      owner.app.open({ iqId: iq.iqId, pin: OWNER_PIN }),
      bob.app.open({ iqId: iq.iqId, pin: BOB_PIN }),
    ]);
    expect(results).toHaveLength(10);
    expect(await events(iq, "opened")).toHaveLength(2);
    expect(iq.hub.ble?.pendingRequests).toBe(0);
  });
});
