import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BUNDLE_FORMAT, caFingerprint, parseBundle, qrForm, type Bundle } from "../../../provisioning/app/bundle.js";

/** A real EC P-256 certificate, as the Pi's CA is. */
function someCa(): string {
  const dir = mkdtempSync(join(tmpdir(), "iq-bundle-ca-"));
  try {
    execFileSync("openssl", ["req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "k", "-out", "c", "-subj", "/CN=t"], { cwd: dir, stdio: "ignore" });
    return readFileSync(join(dir, "c"), "utf8");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const bundle = (overrides: Partial<Bundle> = {}): Bundle => ({
  format: BUNDLE_FORMAT,
  broker: "mqtts://iqpi.local:8883",
  ca: someCa(),
  username: "alice-laptop",
  password: "x".repeat(24),
  ...overrides,
});

describe("connection bundle", () => {
  it("reads back what the Pi writes, and its QR form carries the CA's fingerprint instead of the CA", () => {
    const made = bundle({ iqId: "iq-1" });
    expect(parseBundle(JSON.stringify(made), "b.json")).toEqual(made);
    const qr = qrForm(made);
    expect(qr).not.toHaveProperty("ca");
    expect(qr.caSha256).toBe(caFingerprint(made.ca));
    expect(JSON.stringify(qr).length).toBeLessThan(300);
  });

  it("refuses what is not a bundle, naming the file and the field", () => {
    expect(() => parseBundle("not json", "b.json")).toThrow(/b\.json is not JSON/);
    expect(() => parseBundle(JSON.stringify(bundle({ broker: "mqtt://iqpi.local:1883" })), "b.json")).toThrow(/broker: an mqtts:\/\/host:port URL/);
    expect(() => parseBundle(JSON.stringify(bundle({ username: "a/b" })), "b.json")).toThrow(/username/);
    expect(() => parseBundle(JSON.stringify({ ...bundle(), extra: 1 }), "b.json")).toThrow(/not an iq-hub connection bundle/);
    const broken = "-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n";
    expect(() => parseBundle(JSON.stringify(bundle({ ca: broken })), "b.json")).toThrow(/its CA is not a certificate/);
  });
});
