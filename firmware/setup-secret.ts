/**
 * The per-device setup secret of an unclaimed IQ (story 1; ETSI EN 303 645 provision 5.1: no
 * default password). It is random per device and per reset, kept sealed in the store, and shown
 * only where someone with the Pi in hand can read it: a root/service-only file in the state
 * directory, and the simulator's terminal. Claiming the IQ deletes both.
 */
import { randomInt } from "node:crypto";
import { chmod, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CROCKFORD_ALPHABET } from "../provisioning/crypto/crockford.js";
import { formatSetupSecret, SETUP_SECRET_SYMBOLS } from "../provisioning/pairing.js";
import type { SecretStore } from "./secret-store.js";
import type { StoreOp } from "./store.js";

const SECRET_KEY = "setup-secret";

export function setupSecretFile(stateDir: string): string {
  return join(stateDir, "setup-secret");
}

/** The current setup secret, made (and written to its file) if there is none. */
export async function ensureSetupSecret(secrets: SecretStore, stateDir: string): Promise<string> {
  const stored = await secrets.get(SECRET_KEY);
  const secret =
    typeof stored === "string"
      ? stored
      : Array.from({ length: SETUP_SECRET_SYMBOLS }, () => CROCKFORD_ALPHABET[randomInt(CROCKFORD_ALPHABET.length)]).join("");
  if (stored === undefined) await secrets.put(SECRET_KEY, secret);
  const file = setupSecretFile(stateDir);
  await writeFile(file, `${formatSetupSecret(secret)}\n`, { mode: 0o600 });
  // The mode above applies only to a new file: an older one keeps whatever it had.
  await chmod(file, 0o600);
  return secret;
}

export async function readSetupSecret(secrets: SecretStore): Promise<string | undefined> {
  const stored = await secrets.get(SECRET_KEY);
  return typeof stored === "string" ? stored : undefined;
}

/** The sealed secret's deletion, committed in one batch with the owner and the claimed mark. */
export function setupSecretDelOp(secrets: SecretStore): StoreOp {
  return secrets.delOp(SECRET_KEY);
}

/** After the claim is on disk; a crash before this leaves a file that the next start removes. */
export async function removeSetupSecretFile(stateDir: string): Promise<void> {
  await rm(setupSecretFile(stateDir), { force: true });
}
