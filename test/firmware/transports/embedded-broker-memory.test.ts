/**
 * The embedded broker runs inside the hub's process, and anyone on the machine can connect to it.
 * 100 publishes of 10 MB once took the hub to 1.25 GB of memory, where it stayed. The built hub
 * runs as a process of its own here, so that its peak memory (VmHWM) is its own.
 */
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generate } from "mqtt-packet";
import { describe, expect, it, onTestFinished } from "vitest";
import { PROTOCOL_VERSION } from "../../../provisioning/protocol/messages.js";
import { responseTopic, topicsFor } from "../../../provisioning/protocol/topics.js";
import { freePort } from "../../support/broker.js";
import { spawnHubProcess } from "../../support/hub-process.js";
import { collect, connectClient, eventually } from "../../support/mqtt.js";

const PUBLISHES = 100;
const AT_ONCE = 10;
const MB = 1024 * 1024;

/** Peak resident memory of a process, in bytes (Linux). */
function peakRss(pid: number): number {
  const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return Number(kb) * 1024;
}

/** CONNECT then one QoS 1 PUBLISH on a fresh connection: "accepted" on its PUBACK, "refused" if the broker closes first. */
function publishOnce(port: number, connectPacket: Buffer, publishPacket: Buffer): Promise<"accepted" | "refused"> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let received = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      // CONNACK is 4 bytes; a PUBACK (0x40) after it means the broker took the whole message.
      if (received.subarray(4).includes(0x40)) {
        socket.destroy();
        resolve("accepted");
      }
    });
    socket.on("error", () => undefined);
    socket.on("close", () => resolve("refused"));
    socket.write(connectPacket);
    socket.write(publishPacket);
  });
}

describe("the embedded broker's memory", () => {
  it(`${PUBLISHES} publishes of 10 MB are refused and the hub's peak RSS stays under 150 MB`, { timeout: 120_000 }, async () => {
    const port = await freePort();
    const iqId = "iq-memory-test";
    const hub = spawnHubProcess({
      HOME: process.env.HOME ?? "",
      IQ_HUB_STATE_DIR: mkdtempSync(join(tmpdir(), "iq-memory-")),
      IQ_HUB_IQ_ID: iqId,
      IQ_HUB_MQTT__EMBEDDED_PORT: String(port),
    });
    onTestFinished(async () => {
      hub.child.kill("SIGKILL");
      await hub.exited;
    });
    await hub.waitFor(/connected to the MQTT broker/, 20_000);
    const topics = topicsFor(iqId);
    const connectPacket = generate({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clientId: "", clean: true, keepalive: 30 });
    const publishPacket = generate({ cmd: "publish", topic: topics.requests, payload: Buffer.alloc(10 * MB, 0x20), qos: 1, messageId: 1, retain: false, dup: false });

    const outcomes: string[] = [];
    for (let sent = 0; sent < PUBLISHES; sent += AT_ONCE) {
      outcomes.push(...(await Promise.all(Array.from({ length: AT_ONCE }, () => publishOnce(port, connectPacket, publishPacket)))));
    }

    const peak = peakRss(hub.child.pid!);
    console.info(`hub peak RSS after ${PUBLISHES} × 10 MB: ${(peak / MB).toFixed(1)} MB`);
    expect(outcomes.filter((outcome) => outcome === "refused")).toHaveLength(PUBLISHES);
    expect(peak).toBeLessThan(150 * MB);
    // And it still answers.
    const app = await connectClient(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4 });
    const replyTo = responseTopic(topics, "app-m");
    const answers = await collect(app, replyTo);
    await app.publishAsync(topics.requests, JSON.stringify({ v: PROTOCOL_VERSION, id: "after", op: "status", args: {}, replyTo }), { qos: 1 });
    await eventually(() => expect(answers).toHaveLength(1));
  });
});
