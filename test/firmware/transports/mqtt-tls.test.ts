/**
 * TLS to a broker off the Pi: the hub verifies the broker against the configured CA and
 * presents its client certificate; without the right CA or certificate it never connects.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { responseTopic } from "../../../provisioning/protocol/topics.js";
import { startTestBroker, type TestBroker } from "../../support/broker.js";
import { collect, connectClient, eventually, requestText, startHubTransport } from "../../support/mqtt.js";

const dir = mkdtempSync(join(tmpdir(), "iq-tls-"));
const file = (name: string) => join(dir, name);
const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "ignore" });

/** A CA, a broker certificate for 127.0.0.1 and a client certificate, all signed by the CA. */
function makePki(prefix: string): void {
  openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", `/CN=${prefix} test CA`,
    "-keyout", file(`${prefix}-ca.key`), "-out", file(`${prefix}-ca.pem`));
  for (const [name, cn, ext] of [["server", "127.0.0.1", "subjectAltName=IP:127.0.0.1"], ["client", "iq-hub", "extendedKeyUsage=clientAuth"]]) {
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${cn}`, "-keyout", file(`${prefix}-${name}.key`),
      "-out", file(`${prefix}-${name}.csr`));
    writeFileSync(file(`${prefix}-${name}.ext`), `${ext}\n`);
    openssl("x509", "-req", "-in", file(`${prefix}-${name}.csr`), "-CA", file(`${prefix}-ca.pem`), "-CAkey",
      file(`${prefix}-ca.key`), "-CAcreateserial", "-days", "2", "-extfile", file(`${prefix}-${name}.ext`),
      "-out", file(`${prefix}-${name}.pem`));
  }
}

let broker: TestBroker;

beforeAll(async () => {
  makePki("good");
  makePki("other");
  // mosquitto started as root drops to its own user, which must be able to read its files.
  chmodSync(dir, 0o755);
  for (const name of readdirSync(dir)) chmodSync(file(name), 0o644);
  broker = await startTestBroker({ tls: { ca: file("good-ca.pem"), cert: file("good-server.pem"), key: file("good-server.key") } });
});
afterAll(() => broker?.stop());

describe("mqtts://", () => {
  const url = () => `mqtts://127.0.0.1:${broker.port}`;

  it("connects with the CA and a client certificate, and answers requests", async () => {
    const hub = await startHubTransport({
      mqtt: {
        url: url(),
        protocolVersion: broker.protocolVersion,
        ca: file("good-ca.pem"),
        cert: file("good-client.pem"),
        key: file("good-client.key"),
      },
    });
    await eventually(() => expect(hub.connection).toEqual([true]));
    const app = await connectClient(url(), {
      ca: [readFileSync(file("good-ca.pem"))],
      cert: readFileSync(file("good-client.pem")),
      key: readFileSync(file("good-client.key")),
      protocolVersion: 4,
    });
    const replyTo = responseTopic(hub.transport.topics, "tls-app");
    const responses = await collect(app, replyTo);
    await app.publishAsync(hub.transport.topics.requests, requestText("over-tls", replyTo), { qos: 1 });
    await eventually(() => expect(responses).toHaveLength(1));
    await app.endAsync();
  });

  it("never connects to a broker its CA did not sign, nor without a client certificate", async () => {
    const wrongCa = await startHubTransport({
      mqtt: { url: url(), protocolVersion: broker.protocolVersion, ca: file("other-ca.pem"), cert: file("good-client.pem"), key: file("good-client.key") },
    });
    const noCert = await startHubTransport({ mqtt: { url: url(), protocolVersion: broker.protocolVersion, ca: file("good-ca.pem") } });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(wrongCa.connection).not.toContain(true);
    expect(noCert.connection).not.toContain(true);
  });
});
