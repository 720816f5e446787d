/**
 * A site to measure: the hub as systemd runs it (`node dist/firmware/main.js`, mock GPIO) on the
 * run's broker, claimed by an Owner, with users whose phones are the real companion app (profiles
 * in a throw-away directory). The sections build on it what they time.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IqClient } from "../provisioning/app/client.js";
import { Companion } from "../provisioning/app/companion.js";
import { Profile } from "../provisioning/app/profile.js";
import { PAIRING_METER } from "../firmware/handler/pairing-meter.js";
import type { BenchBroker } from "./broker.js";
import { sleep } from "./measure.js";
import { BENCH_IQ_ID, hubStateDir, spawnHub, type Watched } from "./processes.js";
import { TimedApp, WireStopwatch } from "./stopwatch.js";

export const OWNER_PIN = "482915";
export const IQ_ID = BENCH_IQ_ID;
const START_TIMEOUT_MS = 10_000;
/** How long the probe waits for each `status` answer while the hub subscribes. */
const PROBE_TIMEOUT_MS = 250;
/**
 * The IQ meters pairing starts (PAIRING_METER: a burst, then 5 a second): past the burst the site
 * waits for the next token outside any timing, as a person activating a phone would anyway.
 */
const PAIRING_PACE_MS = 1_000 / PAIRING_METER.global.refillPerSecond + 50;

export interface ActivatedUser {
  userId: string;
  /** The random initial PIN it activated with, which stays its PIN. */
  pin: string;
  phone: TimedApp;
  /** The whole activation as the app saw it (ms). */
  activationMs: number;
}

export class Site {
  private readonly clients: IqClient[] = [];
  private pairingStarts = 0;
  private owner: TimedApp | undefined;

  private constructor(
    private readonly broker: BenchBroker,
    /** The hub's directory (config and state); the site's own unless the caller passed one. */
    readonly dir: string,
    private readonly ownsDir: boolean,
    private readonly home: string,
    public hub: Watched,
  ) {}

  /** A new IQ on `broker`, answering requests; in `dir` if given (the caller removes it). */
  static async start(broker: BenchBroker, dir?: string): Promise<Site> {
    const hubDir = dir ?? mkdtempSync(join(tmpdir(), "iq-bench-hub-"));
    const site = new Site(broker, hubDir, dir === undefined, mkdtempSync(join(tmpdir(), "iq-bench-apps-")), spawnHub({ brokerUrl: broker.url }, {}, hubDir));
    await site.untilAnswering();
    return site;
  }

  /** Stops the hub, runs `meanwhile` on its stopped state, and starts it again on the same state. */
  async restartHub(meanwhile: (stateDir: string) => Promise<void>): Promise<void> {
    await this.hub.stop();
    await meanwhile(hubStateDir(this.dir));
    this.hub = spawnHub({ brokerUrl: this.broker.url }, {}, this.dir);
    // A restart refills the IQ's in-memory meters, pairing starts included.
    this.pairingStarts = 0;
    await this.untilAnswering();
  }

  /** A phone (or web relay) with a profile of its own and its own broker connection. */
  async app(name: string): Promise<TimedApp> {
    const client = await IqClient.connect({ broker: this.broker.url });
    this.clients.push(client);
    const wire = new WireStopwatch(client);
    return new TimedApp(new Companion({ profile: Profile.at({ home: this.home, name }), client: wire }), wire);
  }

  /** The Owner's app, claiming the IQ with the setup secret on first use. */
  async claimed(): Promise<TimedApp> {
    if (this.owner !== undefined) return this.owner;
    const owner = await this.app("owner");
    const setupSecret = readFileSync(join(hubStateDir(this.dir), "setup-secret"), "utf8").trim();
    await this.pairingTurn();
    await owner.app.claim({ iqId: IQ_ID, setupSecret, name: "Owner", pin: OWNER_PIN });
    this.owner = owner;
    return owner;
  }

  /** A user the Owner adds (`relay`: a web relay), activated on a phone of their own with the random PIN. */
  async addActivatedUser(name: string, kind: "user" | "relay" = "user"): Promise<ActivatedUser> {
    const owner = (await this.claimed()).app;
    const added = kind === "relay" ? await owner.addRelay({ iqId: IQ_ID, pin: OWNER_PIN, name }) : await owner.addUser({ iqId: IQ_ID, pin: OWNER_PIN, name, role: "user" });
    const phone = await this.app(name);
    await this.pairingTurn();
    const start = performance.now();
    await phone.app.activate({ iqId: IQ_ID, userId: added.userId, pin: added.initialPin });
    return { userId: added.userId, phone, activationMs: performance.now() - start, pin: added.initialPin };
  }

  /** Apps first, then the hub, then the files. */
  async close(): Promise<void> {
    for (const client of this.clients) await client.close();
    await this.hub.stop();
    rmSync(this.home, { recursive: true, force: true });
    if (this.ownsDir) rmSync(this.dir, { recursive: true, force: true });
  }

  private async pairingTurn(): Promise<void> {
    if (this.pairingStarts >= PAIRING_METER.global.capacity - 1) await sleep(PAIRING_PACE_MS);
    this.pairingStarts += 1;
  }

  /** The hub logs "connected" before its subscription is acknowledged: ask until it answers. */
  private async untilAnswering(): Promise<void> {
    await this.hub.waitForLine(/connected to the MQTT broker/, START_TIMEOUT_MS);
    const client = await IqClient.connect({ broker: this.broker.url, timeoutMs: PROBE_TIMEOUT_MS });
    try {
      const probe = new Companion({ profile: Profile.at({ home: this.home, name: "probe" }), client });
      const deadline = performance.now() + START_TIMEOUT_MS;
      while (!(await probe.status({ iqId: IQ_ID }).then(() => true, () => false))) {
        this.hub.assertRunning();
        if (performance.now() > deadline) throw new Error("the hub did not answer status");
      }
    } finally {
      await client.close();
    }
  }
}
