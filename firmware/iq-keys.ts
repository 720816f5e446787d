/**
 * The IQ's own keys (protocol v2): an Ed25519 identity key that signs the retained state, every
 * event and every plain answer, and an X25519 static key that apps seal their commands against
 * (one ephemeral key per command, so a stolen app key file opens no recorded command). Both are
 * made with the setup secret of an unclaimed IQ, kept sealed under the device key, and handed to
 * each app in its sealed pairing result. A factory reset destroys the device key and so both.
 */
import { generateIdentity, generateStaticKey, identityPublicKey, staticPublicKey } from "../provisioning/crypto/identity.js";
import type { SecretStore } from "./secret-store.js";

const RECORD = "iq-keys";

export interface IqKeys {
  identitySecret: Uint8Array;
  identityPublic: Uint8Array;
  staticSecret: Uint8Array;
  staticPublic: Uint8Array;
}

/** The IQ's keys, made and stored if there are none yet. */
export async function ensureIqKeys(secrets: SecretStore): Promise<IqKeys> {
  const stored = await secrets.get(RECORD);
  if (isStored(stored)) {
    const identitySecret = new Uint8Array(Buffer.from(stored.identity, "base64url"));
    const staticSecret = new Uint8Array(Buffer.from(stored.static, "base64url"));
    return { identitySecret, identityPublic: identityPublicKey(identitySecret), staticSecret, staticPublic: staticPublicKey(staticSecret) };
  }
  const identity = generateIdentity();
  const staticKey = generateStaticKey();
  await secrets.put(RECORD, {
    identity: Buffer.from(identity.secretKey).toString("base64url"),
    static: Buffer.from(staticKey.secretKey).toString("base64url"),
  });
  return {
    identitySecret: identity.secretKey,
    identityPublic: identity.publicKey,
    staticSecret: staticKey.secretKey,
    staticPublic: staticKey.publicKey,
  };
}

function isStored(value: unknown): value is { identity: string; static: string } {
  const record = value as { identity?: unknown; static?: unknown } | undefined;
  return typeof record?.identity === "string" && typeof record.static === "string";
}
