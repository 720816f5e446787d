/**
 * The IQ's cryptographic hot paths, in process: what one Code check, one activation and one
 * sealed command cost. Each result is checked (a Code that does not validate is a broken bench,
 * not a fast one), so a regression cannot hide behind an early refusal.
 */
import { randomBytes } from "node:crypto";
import { generateCode, validateCodeForUser, type UserDevice } from "../provisioning/crypto/code.js";
import { cpaceFinish, cpaceStart, cpaceVerifyConfirm, deriveAppKeys } from "../provisioning/crypto/cpace.js";
import { checkCommandMac, openCommand, sealAnswer, sealCommand } from "../provisioning/crypto/command-seal.js";
import { generateStaticKey } from "../provisioning/crypto/identity.js";
import { pairingCi, pairingPassword } from "../provisioning/pairing.js";
import { durations, percentiles, rate, type Results } from "./measure.js";

const IQ_ID = "bench-iq";
const USER_ID = "u-bench";
const PIN = "480273";
const ACTIVATION_RUNS = 200;

function device(appId: string): UserDevice {
  return { appId, key: randomBytes(32), lastCounter: 0 };
}

/**
 * Code checks for a user with the most devices allowed: the IQ tries every device and every step
 * of the window whatever matches, so this is the cost of every web-app request. The Code comes
 * from the second device, the last one tried.
 */
function codeValidations(budgetMs: number): { value: number; n: number } {
  const devices = [device("app-1"), device("app-2")];
  const second = devices[1]!;
  const now = Date.now();
  const code = generateCode({ key: second.key, iqId: IQ_ID, appId: second.appId, purpose: "open", pin: PIN, lastCounter: 0, now }).code;
  return rate(() => {
    const verdict = validateCodeForUser({ iqId: IQ_ID, purpose: "open", code, now, expectedPin: PIN, devices });
    if (!verdict.ok) throw new Error(`bench Code refused: ${verdict.reason}`);
  }, budgetMs);
}

/** One first activation with the random PIN, app and IQ in turn: both parties' work added up. */
function activate(): void {
  const appId = `app-${randomBytes(4).toString("hex")}`;
  const password = pairingPassword({ kind: "activate", pin: PIN });
  const inputs = { password, ci: pairingCi("activate", IQ_ID, appId, USER_ID), sid: randomBytes(16) };
  const app = cpaceStart("initiator", inputs);
  const iq = cpaceStart("responder", inputs);
  const appResult = cpaceFinish(app, iq.message);
  const iqResult = cpaceFinish(iq, app.message);
  cpaceVerifyConfirm(appResult, iqResult.confirm);
  cpaceVerifyConfirm(iqResult, appResult.confirm);
  deriveAppKeys(appResult.isk, { iqId: IQ_ID, appId });
  deriveAppKeys(iqResult.isk, { iqId: IQ_ID, appId });
}

/**
 * A sealed "open" command as the app sends it (protocol v2: an ephemeral X25519 key per command),
 * checked, opened and answered as the IQ does: story 6's cryptography on both ends.
 */
function sealedCommands(budgetMs: number): { value: number; n: number } {
  const iq = generateStaticKey();
  const context = { appKey: randomBytes(32), iqId: IQ_ID, appId: "app-1" };
  const payload = Buffer.from(JSON.stringify({ op: "open", args: { lock: "door" }, pin: PIN, challenge: "c".repeat(22) }));
  let n = 0;
  return rate(() => {
    const requestId = `r-${n++}`;
    const sealed = sealCommand({ ...context, requestId, iqStaticKey: iq.publicKey, payload });
    if (!checkCommandMac({ ...context, requestId, ...sealed })) throw new Error("bench: the MAC did not check");
    const opened = openCommand({ ...context, requestId, iqStatic: iq, epk: sealed.epk, box: sealed.box });
    sealAnswer({ ...context, requestId, answerKey: opened.answerKey, payload });
  }, budgetMs);
}

/** Per throughput measurement, after a warm-up of a fifth of it. */
const THROUGHPUT_BUDGET_MS = 1_500;

export async function measureCrypto(results: Results): Promise<void> {
  results.set("code_validations_per_s", codeValidations(THROUGHPUT_BUDGET_MS));
  results.set("cpace_in_process_ms", percentiles(await durations(activate, ACTIVATION_RUNS, 10)));
  results.set("sealed_command_in_process_per_s", sealedCommands(THROUGHPUT_BUDGET_MS));
}
