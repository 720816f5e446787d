import { stat } from "node:fs/promises";
import { join } from "node:path";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from "vitest";
import { Profile } from "../../../provisioning/app/profile.js";
import { main, type CliEnvironment } from "../../../provisioning/cli.js";
import { generateIdentity, signDocument } from "../../../provisioning/crypto/identity.js";
import { topicsFor } from "../../../provisioning/protocol/topics.js";
import { startTestBroker, type TestBroker } from "../../support/broker.js";
import { startTestHub } from "../../support/hub.js";
import { connectClient } from "../../support/mqtt.js";
import { profileWith, someActivation, tempHome } from "./temp-home.js";

const NOON = Date.UTC(2026, 0, 1, 12, 0, 0);

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

interface RunOptions {
  home?: string;
  env?: NodeJS.ProcessEnv;
  askSecret?: CliEnvironment["askSecret"];
  /** The app's clock: noon on 1 January 2026 unless a test talks to a real hub, which uses its own. */
  now?: () => number;
  progress?: CliEnvironment["progress"];
  requestTimeoutMs?: number;
  /** Ends `events --follow`; already aborted unless given. */
  stop?: AbortSignal;
  /** Sees stderr as it is written (a following command has not returned yet). */
  onStderr?: (text: string) => void;
}

/** Runs `iq args…` in-process with its own IQ_HOME (or the given one) and no terminal. */
async function iq(args: string[], options: RunOptions = {}): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const status = await main(args, {
    env: { IQ_HOME: options.home ?? tempHome(), ...options.env },
    stdout: (text) => (stdout += text),
    stderr: (text) => {
      stderr += text;
      options.onStderr?.(text);
    },
    ...(options.askSecret && { askSecret: options.askSecret }),
    ...(options.progress && { progress: options.progress }),
    ...(options.requestTimeoutMs !== undefined && { requestTimeoutMs: options.requestTimeoutMs }),
    stop: options.stop ?? AbortSignal.abort(),
    now: options.now ?? (() => NOON),
  });
  return { status, stdout, stderr };
}

/** IQ_HOME of a profile holding one activation on `iqId`. */
async function homeWithIq(iqId = "iq-one"): Promise<{ home: string; profile: Profile }> {
  const profile = await profileWith({ [iqId]: someActivation() });
  return { home: profile.file.replace(/\/default\.json$/, ""), profile };
}

describe("iq: the command line", () => {
  it("a wrong command line exits 2 and says what is wrong", async () => {
    const unknown = await iq(["frobnicate"]);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command 'frobnicate'/);

    const role = await iq(["user", "add", "--name", "Bob", "--role", "king"]);
    expect(role.status).toBe(2);
    expect(role.stderr).toMatch(/Allowed choices are admin, superuser, user/);

    const state = await iq(["office", "sideways"]);
    expect(state.status).toBe(2);

    const after = await iq(["events", "--after", "soon"]);
    expect(after.status).toBe(2);
    expect(after.stderr).toMatch(/expected a whole number/);
  });

  it("--web needs --user and --code, and they need --web", async () => {
    const { home } = await homeWithIq();

    const missing = await iq(["open", "--web", "--user", "u-1"], { home });
    expect(missing).toMatchObject({ status: 2, stderr: "error usage: --web needs --user and --code\n" });

    const stray = await iq(["office", "on", "--code", "ABCDE"], { home });
    expect(stray).toMatchObject({ status: 2, stderr: "error usage: --user and --code go with --web\n" });
  });

  it("--help prints the commands and exits 0", async () => {
    const help = await iq(["--help"]);

    expect(help.status).toBe(0);
    for (const command of ["discover", "status", "claim", "user", "activate", "pin", "code", "open", "office", "device", "backup", "restore", "events"]) {
      expect(help.stdout).toContain(command);
    }
  });

  it("with --json an error is {error:{code,message}} on stdout and exit 1", async () => {
    const run = await iq(["--json", "--iq", "iq-nowhere", "code", "--pin", "2468"]);

    expect(run.status).toBe(1);
    expect(JSON.parse(run.stdout)).toEqual({
      error: { code: "not_activated", message: expect.stringContaining("profile default is not activated on iq-nowhere") as string },
    });
    expect(run.stderr).toBe("");
  });

  it("with --json a usage error is JSON too, with exit 2", async () => {
    const run = await iq(["status", "--json", "--bogus"]);

    expect(run.status).toBe(2);
    expect(JSON.parse(run.stdout)).toEqual({ error: { code: "usage", message: "unknown option '--bogus'" } });
    expect(run.stderr).toBe("");
  });

  it("without --pin, IQ_PIN or a terminal, a PIN is asked for by name of the ways to give one", async () => {
    const { home } = await homeWithIq();

    const run = await iq(["code"], { home });

    expect(run).toMatchObject({ status: 2, stderr: "error usage: a PIN is needed: pass --pin, set IQ_PIN, or run in a terminal to be asked for it\n" });
  });

  it("the PIN comes from --pin, else IQ_PIN, else the terminal", async () => {
    const { home, profile } = await homeWithIq();
    const asked: string[] = [];
    const askSecret = (prompt: string): Promise<string> => {
      asked.push(prompt);
      return Promise.resolve("2468");
    };

    expect((await iq(["code", "--pin", "2468"], { home, askSecret })).status).toBe(0);
    expect((await iq(["code"], { home, askSecret, env: { IQ_PIN: "2468" } })).status).toBe(0);
    // Two Codes a minute: the third waits for the next one, and says so.
    const third = await iq(["code"], { home, askSecret });
    expect(third.stderr).toMatch(/^error code_rate_limited: /);
    expect(asked).toEqual(["PIN: "]);
    expect((await profile.read()).iqs["iq-one"]?.codeCounter).toBe(Math.floor(NOON / 60_000) * 2 + 1);
  });

  it("a PIN being chosen: the prompt states the rules, and a refused or mistyped one is asked for again", async () => {
    const scripted = (answers: string[]) => {
      const asked: string[] = [];
      const askSecret = (prompt: string): Promise<string> => {
        asked.push(prompt);
        return Promise.resolve(answers.shift() ?? "");
      };
      return { asked, askSecret };
    };
    // Trivial, then two that differ, then a good one: chosen, and only then is the broker tried.
    const good = scripted(["1234", "482915", "482916", "482915", "482915"]);
    const args = ["--iq", "iq-one", "claim", "--secret", "AAAA-BBBB-CCCC", "--name", "Alice"];
    const env = { IQ_BROKER: "mqtt://127.0.0.1:1" };
    const run = await iq(args, { env, askSecret: good.askSecret });

    expect(good.asked).toEqual(["PIN you choose: ", "PIN you choose: ", "PIN you choose again: ", "PIN you choose: ", "PIN you choose again: "]);
    expect(run.stderr).toMatch(/^PIN you choose: 4 to 8 digits; no repeats \(1212\), no runs \(1234, 4321\), no common PINs \(2580\)\n/);
    expect(run.stderr).toContain("; try again\nthe two PINs differ; try again\nerror broker_unreachable");

    const stubborn = scripted(["1111", "1111", "1111"]);
    const refused = await iq(args, { env, askSecret: stubborn.askSecret });
    expect(refused).toMatchObject({ status: 1, stderr: expect.stringMatching(/\nerror pin_trivial: .*: nothing was sent\n$/) as string });
    expect(stubborn.asked).toHaveLength(3);
  });

  it("iq code makes a Code offline for the profile's only IQ", async () => {
    const { home } = await homeWithIq("iq-only");

    const human = await iq(["code", "--pin", "2468"], { home, env: { IQ_BROKER: "mqtt://127.0.0.1:1" } });
    expect(human.status).toBe(0);
    // The time as everywhere (CLI, log, events): ISO 8601 in UTC.
    expect(human.stdout).toMatch(/^Code for open of door on iq-only: [0-9A-HJKMNP-TV-Z]{5} \(valid once, until about 2026-01-01T12:03:00Z\)\n$/);

    const json = await iq(["--json", "code", "--for", "office_on", "--lock", "gate", "--pin", "2468"], { home });
    expect(JSON.parse(json.stdout)).toMatchObject({ iqId: "iq-only", lock: "gate", purpose: "office_on", validUntil: NOON + 180_000 });
  });

  it("--iq is needed when the profile knows several IQs, or none", async () => {
    const profile = await profileWith({ "iq-one": someActivation(), "iq-two": someActivation() });
    const home = profile.file.replace(/\/default\.json$/, "");

    const several = await iq(["code", "--pin", "2468"], { home });
    expect(several).toMatchObject({ status: 2, stderr: expect.stringContaining("knows several IQs (iq-one, iq-two): pass --iq ID") as string });
    expect((await iq(["code", "--pin", "2468", "--iq", "iq-two"], { home })).status).toBe(0);

    const none = await iq(["status"]);
    expect(none.stderr).toMatch(/knows no IQ yet: pass --iq ID/);
  });

  it("a TLS file that cannot be read is named before anything connects", async () => {
    const run = await iq(["--iq", "iq-one", "status"], { env: { IQ_MQTT_CA: "/nonexistent/ca.pem" } });

    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/^error tls_file_unreadable: cannot read \$IQ_MQTT_CA \(\/nonexistent\/ca\.pem\)/);
  });

  it("--profile chooses the profile file", async () => {
    const home = tempHome();
    const phone = Profile.at({ home, name: "phone" });
    await phone.update((data) => {
      data.iqs["iq-one"] = someActivation();
    });

    expect((await iq(["--profile", "phone", "code", "--pin", "2468"], { home })).status).toBe(0);
    expect((await iq(["code", "--pin", "2468"], { home })).stderr).toMatch(/profile default knows no IQ yet/);
  });
});

describe("iq over a broker", () => {
  let broker: TestBroker;
  let hub: MqttClient;
  beforeAll(async () => {
    broker = await startTestBroker();
  });
  afterAll(() => broker.stop());

  /** A hub that answers status and refuses everything else with forbidden. */
  async function startFakeHub(iqId: string): Promise<void> {
    const identity = generateIdentity();
    hub = await connectClient(broker.url);
    hub.on("message", (_topic, payload) => {
      const request = JSON.parse(payload.toString()) as { id: string; op: string; replyTo: string };
      const status = {
        iqId,
        version: "0.1.0",
        phase: "activated",
        state: "ready",
        claimed: true,
        claimWindowOpen: false,
        clockSynced: false,
        keyProtection: "otp-wrapped",
        locks: [{ name: "door", unlocked: false, officeMode: true }],
      };
      const outcome =
        iqId === "iq-status"
          ? { ok: true, result: status }
          : { ok: false, error: { code: "forbidden", message: "status is not allowed here" } };
      // Signed as an IQ signs (a profile that never paired cannot check it, but the form is v2's).
      const answer = signDocument({ secretKey: identity.secretKey, kind: "answer", iqId, body: { id: request.id, to: request.replyTo, ...outcome } });
      hub.publish(request.replyTo, JSON.stringify({ v: 2, id: request.id, ...answer }), { qos: 1 });
    });
    await hub.subscribeAsync(topicsFor(iqId).requests, { qos: 1 });
    await hub.publishAsync(topicsFor(iqId).availability, "online", { qos: 1, retain: true });
  }

  it("status prints the IQ's state, clock and locks", async () => {
    await startFakeHub("iq-status");

    const run = await iq(["--broker", broker.url, "--iq", "iq-status", "status"]);

    expect(run.stderr).toBe("");
    expect(run.stdout).toBe(
      "IQ iq-status (v0.1.0): ready; clock NOT synchronised: Codes are refused until it is\ndoor: Office Mode on (held open)\n" +
        "keys: otp-wrapped (bound to this board's OTP key)\n",
    );
  });

  it("--broker host:port is taken as mqtt://host:port", async () => {
    await startFakeHub("iq-status");

    const run = await iq(["--broker", broker.url.replace(/^mqtt:\/\//, ""), "--iq", "iq-status", "status"]);

    expect(run).toMatchObject({ status: 0, stderr: "" });
    expect((await iq(["--help"])).stdout).toMatch(/host:port means\s+mqtt:\/\/host:port/);
  });

  it("an IQ's refusal is printed as error <code>: <message> with exit 1", async () => {
    await startFakeHub("iq-refuses");

    const run = await iq(["--iq", "iq-refuses", "status"], { env: { IQ_BROKER: broker.url } });

    expect(run).toMatchObject({ status: 1, stderr: "error forbidden: status is not allowed here\n" });
  });

  it("against a real hub: claim, then user add says what to hand over and how to activate", async () => {
    const iqHub = await startTestHub({ broker });
    onTestFinished(() => iqHub.stop());
    const home = tempHome();
    const env = { IQ_BROKER: broker.url };
    const now = Date.now;

    const status = await iq(["--profile", "alice-phone", "--iq", iqHub.iqId, "status"], { home, env, now });
    expect(status.stdout).toContain(
      `Unclaimed, claim window open: npx iq --broker ${broker.url} --profile alice-phone claim --iq ${iqHub.iqId} --secret XXXX-XXXX-XXXX --name NAME\n`,
    );

    // Run as the installed `iq` (its launcher on PATH sets IQ_CLI), the same hint says `iq`: on a
    // Pi outside a checkout, `npx iq` would fetch whatever npm calls "iq".
    const installed = await iq(["--profile", "alice-phone", "--iq", iqHub.iqId, "status"], { home, env: { ...env, IQ_CLI: "iq" }, now });
    expect(installed.stdout).toContain(`Unclaimed, claim window open: iq --broker ${broker.url} --profile alice-phone claim --iq ${iqHub.iqId}`);

    const claim = await iq(["--iq", iqHub.iqId, "claim", "--secret", iqHub.setupSecret(), "--name", "Alice", "--pin", "2469"], { home, env, now });
    expect(claim.stderr).toBe("");
    expect(claim.stdout).toMatch(new RegExp(`^Claimed ${iqHub.iqId}: you are its owner, Alice \\(user id u-[0-9a-f]+\\)`));

    const added = await iq(["user", "add", "--name", "Bob", "--role", "user", "--pin", "2469"], { home, env, now });
    expect(added.stdout).toMatch(
      new RegExp(
        `^Added Bob \\(user\\)\\. Initial PIN: (\\d{6}) — hand it over in person; Bob activates with: npx iq --broker ${broker.url} --profile bob activate --iq ${iqHub.iqId} --user u-[0-9a-f]+ --pin \\1\n$`,
      ),
    );
    // The broker the profile paired over is remembered: no --broker needed from now on.
    const listed = await iq(["--json", "user", "list", "--pin", "2469"], { home, now });
    expect((JSON.parse(listed.stdout) as { users: unknown[] }).users).toHaveLength(2);
  });

  it("user remove and pin reset take a unique name in any case; an ambiguous one lists the matches", async () => {
    const iqHub = await startTestHub({ broker });
    onTestFinished(() => iqHub.stop());
    const home = tempHome();
    const env = { IQ_BROKER: broker.url };
    const now = Date.now;
    await iq(["--iq", iqHub.iqId, "claim", "--secret", iqHub.setupSecret(), "--name", "Alice", "--pin", "2469"], { home, env, now });
    const add = async (name: string): Promise<string> =>
      (JSON.parse((await iq(["--json", "user", "add", "--name", name, "--role", "user", "--pin", "2469"], { home, now })).stdout) as { userId: string }).userId;
    const carol = await add("Carol");
    const bobs = [await add("Bob"), await add("bob")];

    const reset = await iq(["--json", "pin", "reset", "CAROL", "--pin", "2469"], { home, now });
    expect(JSON.parse(reset.stdout)).toMatchObject({ userId: carol });
    const ambiguous = await iq(["user", "remove", "Bob", "--pin", "2469"], { home, now });
    expect(ambiguous.status).toBe(1);
    expect(ambiguous.stderr).toMatch(new RegExp(`^error user_ambiguous: 2 users are called Bob on ${iqHub.iqId}: .*; give the user id\n$`));
    expect(ambiguous.stderr).toContain(`Bob (user, ${bobs[0]})`);
    expect(ambiguous.stderr).toContain(`bob (user, ${bobs[1]})`);
    expect((await iq(["user", "remove", "Dave", "--pin", "2469"], { home, now })).stderr).toMatch(/^error user_unknown: no user with the id or name Dave/);
    expect(await iq(["user", "remove", "carol", "--pin", "2469"], { home, now })).toMatchObject({ status: 0, stdout: `Removed carol (${carol}) from ${iqHub.iqId}.\n` });
    expect((await iq(["user", "remove", bobs[1]!, "--pin", "2469"], { home, now })).stdout).toBe(`Removed ${bobs[1]} from ${iqHub.iqId}.\n`);
  });

  it("story 8: after the re-claim the CLI says to restore, refuses a backup that would replace the real one, and backup --out feeds restore --from", async () => {
    const iqHub = await startTestHub({ broker });
    onTestFinished(() => iqHub.stop());
    const home = tempHome();
    const env = { IQ_BROKER: broker.url };
    const now = Date.now;
    const pin = ["--pin", "2469"];
    await iq(["--iq", iqHub.iqId, "claim", "--secret", iqHub.setupSecret(), "--name", "Alice", ...pin], { home, env, now });
    for (const name of ["Bob", "Carol"]) await iq(["user", "add", "--name", name, "--role", "user", ...pin], { home, now });
    const file = join(home, "..", "iq-backup.json");
    const saved = await iq(["backup", "--out", file, ...pin], { home, now });
    expect(saved.stdout).toContain(`kept in profile default and ${file}: 3 users, 1 lock.`);
    expect((await stat(file)).mode & 0o777).toBe(0o600);

    await iqHub.hub.factoryReset("button");
    const reclaimed = await iq(["--iq", iqHub.iqId, "claim", "--secret", iqHub.setupSecret(), "--name", "Alice", ...pin], { home, now });
    expect(reclaimed.stdout).toMatch(new RegExp(`This profile has a backup of ${iqHub.iqId} \\(3 users, made .+\\): now run npx iq --profile default restore\n$`));
    const tooEarly = await iq(["backup", ...pin], { home, now });
    expect(tooEarly).toMatchObject({ status: 1, stderr: expect.stringMatching(/^error backup_would_shrink: .*pass --force/) as string });

    const restored = await iq(["restore", "--from", file, ...pin], { home, now });
    expect(restored.stdout).toMatch(/^Restored 2 users on /);
    // Restored: a smaller backup is now an ordinary one.
    expect((await iq(["backup", ...pin], { home, now })).status).toBe(0);
  });

  it("a mistyped IQ id: after the wait, the IQs seen on the broker; progress on the terminal meanwhile", async () => {
    await startFakeHub("iq-status");
    const progress: string[] = [];

    const run = await iq(["--broker", broker.url, "--iq", "iq-stauts", "status"], { requestTimeoutMs: 1_300, progress: (line) => progress.push(line), now: Date.now });

    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(new RegExp(`^error iq_unknown: no IQ iq-stauts on ${broker.url}; IQs seen: (.+, )?iq-status(, .+)? \\(check --iq\\)\n$`));
    expect(progress).toEqual(["waiting for IQ iq-stauts… 1 s", ""]);
  });

  it("events: names for the Owner, the refused op as its command, --user and --type filters", async () => {
    const iqHub = await startTestHub({ broker });
    onTestFinished(() => iqHub.stop());
    const home = tempHome();
    const now = Date.now;
    await iq(["--iq", iqHub.iqId, "claim", "--secret", iqHub.setupSecret(), "--name", "Alice", "--pin", "2469"], { home, env: { IQ_BROKER: broker.url }, now });
    const bob = JSON.parse((await iq(["--json", "user", "add", "--name", "Bob", "--role", "user", "--pin", "2469"], { home, now })).stdout) as { userId: string; initialPin: string };
    const bobHome = tempHome();
    await iq(["--broker", broker.url, "--iq", iqHub.iqId, "activate", "--user", bob.userId, "--pin", bob.initialPin], { home: bobHome, now });
    // Refused: the message names the command Bob typed, not the IQ's op.
    expect(await iq(["user", "add", "--name", "Eve", "--role", "user", "--pin", bob.initialPin], { home: bobHome, now })).toMatchObject({
      status: 1,
      stderr: "error forbidden: iq user add: adding users needs the Owner or an Admin; you are a User\n",
    });

    const withNames = await iq(["events", "--pin", "2469", "--type", "refused"], { home, now });
    expect(withNames.stdout).toMatch(/^#\d+ \S+Z refused [^\n]+\n$/);
    expect(withNames.stdout).toContain(`reason=forbidden user=Bob (${bob.userId})`);
    expect(withNames.stdout).toContain(`command="iq user add"`);
    const bobsOnly = await iq(["events", "--pin", "2469", "--user", "bob"], { home, now });
    expect(bobsOnly.stdout.trim().split("\n").map((line) => line.split(" ")[2])).toEqual(["activated", "refused"]);
    // Without a PIN (none given, no terminal) the ids stay: events need none.
    const ids = await iq(["events", "--type", "refused"], { home, now });
    expect(ids.stdout).toContain(`reason=forbidden user=${bob.userId} details=`);
  });

  it("events --follow says on stderr that it follows, and when the broker goes and comes back", async () => {
    const iqHub = await startTestHub({ broker });
    onTestFinished(() => iqHub.stop());
    const home = tempHome();
    const now = Date.now;
    await iq(["--broker", broker.url, "--iq", iqHub.iqId, "claim", "--secret", iqHub.setupSecret(), "--name", "Alice", "--pin", "2469"], { home, now });
    const stop = new AbortController();
    let said = "";
    const following = iq(["events", "--follow"], { home, now, stop: stop.signal, onStderr: (text) => (said += text) });

    await vi.waitFor(() => expect(said).toContain(`following the events of ${iqHub.iqId} on ${broker.url} (Ctrl-C ends)\n`), { timeout: 5_000 });
    await broker.stop();
    await vi.waitFor(() => expect(said).toContain(`lost the broker ${broker.url}: retrying…\n`), { timeout: 5_000 });
    await broker.restart();
    await vi.waitFor(() => expect(said).toContain(`broker ${broker.url} is back: following again\n`), { timeout: 10_000 });
    stop.abort();
    expect(await following).toMatchObject({ status: 0 });
    expect(said.match(/lost the broker/g)).toHaveLength(1);
  });

  it("discover lists the IQs that announce themselves", async () => {
    await startFakeHub("iq-discovered");

    const run = await iq(["--broker", broker.url, "--json", "discover", "--wait", "300"]);

    expect(JSON.parse(run.stdout)).toContainEqual({ iqId: "iq-discovered", availability: "online" });
  });
});
