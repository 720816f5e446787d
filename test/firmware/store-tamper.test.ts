/**
 * Issue 8 item 5: someone with the card but without the device key edits `db/` (a User made the
 * Owner, a lockout deleted, a Code counter rolled back, a record added) and puts the card back.
 * The real hub, started as a process on that store, must refuse to start, say what it found and
 * how to fix it, and leave the relay locked.
 */
import { describe, expect, it, onTestFinished } from "vitest";
import { freePort } from "../../bench/net.js";
import type { AppRecord } from "../../firmware/users.js";
import { spawnHubProcess } from "../support/hub-process.js";
import { startTestHub } from "../support/hub.js";
import { editRaw, tempStateDir, type RawSublevel } from "./temp-state.js";

interface Prepared {
  stateDir: string;
  bob: string;
  appId: string;
  /** Bob's sealed app record while its Code counter was 5 (it is 9 now). */
  oldAppRecord: unknown;
}

/** A claimed-looking IQ with an Owner, a User with a lockout record and an app whose Code counter moved on. */
async function prepare(): Promise<Prepared> {
  const stateDir = tempStateDir();
  const test = await startTestHub({ stateDir });
  const { hub } = test;
  const { user: ann } = await hub.users.add("Ann", "owner", "2580");
  const { user: bob } = await hub.users.add("Bob", "user");
  const appId = "app-bob-1";
  const record: AppRecord = {
    appId,
    userId: bob.userId,
    codeKey: "AAAA",
    messageKey: "BBBB",
    codeCounter: 5,
    activatedAt: new Date().toISOString(),
  };
  await hub.users.addApp(record, undefined);
  const oldAppRecord = await hub.store.get("secrets", `app:${appId}`);
  await hub.users.saveApp({ ...record, codeCounter: 9 });
  for (let i = 0; i < 5; i++) await hub.lockout.recordFailure(bob.userId);
  expect(ann.role).toBe("owner");
  await test.stop();
  return { stateDir, bob: bob.userId, appId, oldAppRecord };
}

async function startProcess(stateDir: string) {
  const hub = spawnHubProcess({
    HOME: process.env.HOME ?? "",
    IQ_HUB_STATE_DIR: stateDir,
    IQ_HUB_MQTT__EMBEDDED_PORT: String(await freePort()),
  });
  onTestFinished(() => void hub.child.kill("SIGKILL"));
  return hub;
}

const TAMPER_CASES: [string, (level: (name: string) => RawSublevel, p: Prepared) => Promise<void>, RegExp][] = [
  [
    "a User made the Owner",
    async (level, p) => {
      const users = level("users");
      await users.put(p.bob, { ...(await users.get(p.bob)) as object, role: "owner" });
    },
    /users: a record was changed/,
  ],
  ["a lockout deleted", (level, p) => level("lockout").del(p.bob), /lockout: 1 record fewer than sealed/],
  [
    "a Code counter rolled back (an older, validly sealed app record put back)",
    (level, p) => level("secrets").put(`app:${p.appId}`, p.oldAppRecord),
    /secrets: a record was changed/,
  ],
  [
    "an Owner added",
    (level) => level("users").put("u-intruder", { userId: "u-intruder", name: "Eve", role: "owner", createdAt: new Date().toISOString() }),
    /users: 1 record more than sealed/,
  ],
];

describe("a store edited without the device key", () => {
  for (const [name, edit, finding] of TAMPER_CASES) {
    it(`${name}: the hub refuses to start, says what it found and the fix, relay locked`, async () => {
      const prepared = await prepare();
      await editRaw(prepared.stateDir, (level) => edit(level, prepared));
      const hub = await startProcess(prepared.stateDir);
      expect(await hub.exited).not.toBe(0);
      const output = hub.output();
      expect(output).toContain("[store_tampered]");
      expect(output).toMatch(finding);
      expect(output).toMatch(/restore .*backup|factory reset/);
      expect(output).toMatch(/fatal error: door locked, LED red/);
      expect(output).not.toMatch(/msg=ready/);
    });
  }

  it("the untouched store starts (control)", async () => {
    const prepared = await prepare();
    const hub = await startProcess(prepared.stateDir);
    await hub.waitFor(/msg=ready/, 10_000);
    expect(hub.output()).not.toContain("store_tampered");
  });
});
