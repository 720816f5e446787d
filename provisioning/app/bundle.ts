/**
 * A connection bundle: what one party (a person's device, the web relay) needs to reach the IQ's
 * LAN broker: the broker's URL, the CA that signed the broker's certificate, and the party's own
 * user name and password. `sudo iq-hub party add` on the Pi makes it; `iq profile import` keeps it
 * in a profile. It grants a broker connection only: everything said to the IQ is still signed or
 * sealed (protocol v2), so a leaked bundle lets someone flood the broker, never open a door.
 *
 * The whole bundle (with the CA's PEM, about 850 bytes) is a file. The QR code printed beside it
 * carries the CA's SHA-256 fingerprint instead (about 250 bytes): a QR of the whole bundle would
 * be over 100 terminal columns wide. The broker sends the CA with its own certificate, so an app
 * that scanned the QR takes the CA from the first TLS handshake and keeps it only if its
 * fingerprint matches.
 */
import { createHash, X509Certificate } from "node:crypto";
import { z } from "zod";

import { AppError } from "./errors.js";

export const BUNDLE_FORMAT = "iq-bundle/1";

/**
 * A party's broker user name, which is also its client id and its response topic's last level:
 * lower-case letters, digits and -, so it is valid in all three (no `+`, `#` or `/`).
 */
export const PARTY_NAME = /^[a-z0-9][a-z0-9-]{0,31}$/;
export const PARTY_NAME_RULE = "1 to 32 lower-case letters, digits and -, starting with a letter or digit";

const PEM_CERTIFICATE = /^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?$/;

const common = {
  format: z.literal(BUNDLE_FORMAT),
  /** mqtts:// only: a bundle is a password, never sent in the clear. */
  broker: z.string().regex(/^mqtts:\/\/[^\s/@]+$/, "an mqtts://host:port URL"),
  username: z.string().regex(PARTY_NAME, PARTY_NAME_RULE),
  password: z.string().min(16, "at least 16 characters"),
  /** The IQ on this broker, when the Pi knew it (the hub picks its id at first start). */
  iqId: z.string().optional(),
};

export const bundleSchema = z.strictObject({
  ...common,
  ca: z.string().regex(PEM_CERTIFICATE, "one PEM certificate"),
});
export type Bundle = z.infer<typeof bundleSchema>;

/** The QR form: the CA's fingerprint (SHA-256 over its DER, base64url) instead of the CA. */
export const qrBundleSchema = z.strictObject({ ...common, caSha256: z.string().regex(/^[A-Za-z0-9_-]{43}$/) });
export type QrBundle = z.infer<typeof qrBundleSchema>;

export function caFingerprint(pem: string): string {
  return createHash("sha256").update(new X509Certificate(pem).raw).digest("base64url");
}

export function qrForm(bundle: Bundle): QrBundle {
  const { ca, ...rest } = bundle;
  return { ...rest, caSha256: caFingerprint(ca) };
}

/** Reads a bundle file's text; `from` names it in the error. */
export function parseBundle(text: string, from: string): Bundle {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new AppError("bundle_invalid", `${from} is not JSON: give the file that sudo iq-hub party add wrote`);
  }
  const parsed = bundleSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue === undefined ? "" : ` (${issue.path.join(".") || "top level"}: ${issue.message})`;
    throw new AppError("bundle_invalid", `${from} is not an iq-hub connection bundle${where}`);
  }
  try {
    caFingerprint(parsed.data.ca);
  } catch (error) {
    throw new AppError("bundle_invalid", `${from}: its CA is not a certificate: ${(error as Error).message}`);
  }
  return parsed.data;
}
