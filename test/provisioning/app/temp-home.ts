/** Throw-away IQ_HOME directories and profiles with a ready activation, for the app's tests. */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { onTestFinished } from "vitest";
import { Profile, type Activation } from "../../../provisioning/app/profile.js";
import { toB64u } from "../../../provisioning/pairing.js";

/** A fresh IQ_HOME, removed when the current test ends. */
export function tempHome(): string {
  const dir = mkdtempSync(join(tmpdir(), "iq-home-"));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, "iq");
}

/** An activation with fresh random keys, as a pairing would leave it. */
export function someActivation(overrides: Partial<Activation> = {}): Activation {
  return {
    userId: "u-alice",
    role: "owner",
    name: "Alice",
    appId: `app-${randomBytes(6).toString("hex")}`,
    codeKey: toB64u(randomBytes(32)),
    messageKey: toB64u(randomBytes(32)),
    codeCounter: 0,
    identityKey: toB64u(randomBytes(32)),
    staticKey: toB64u(randomBytes(32)),
    activated: true,
    ...overrides,
  };
}

/** A profile in a fresh IQ_HOME holding `activations` by IQ id. */
export async function profileWith(activations: Record<string, Activation>, name = "default"): Promise<Profile> {
  const profile = Profile.at({ home: tempHome(), name });
  await profile.update((data) => {
    Object.assign(data.iqs, activations);
  });
  return profile;
}
