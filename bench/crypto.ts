/**
 * The IQ's cryptographic hot paths, in process: what one Code check, one activation and one
 * sealed command cost. Each result is checked (a Code that does not validate is a broken bench,
 * not a fast one), so a regression cannot hide behind an early refusal.
 */
import { randomBytes } from "node:crypto";
import { generateCode, validateCode, validateCodeForUser, type UserDevice } from "../provisioning/crypto/code.js";
import { cpaceFinish, cpaceStart, cpaceVerifyConfirm, deriveAppKeys } from "../provisioning/crypto/cpace.js";
import { checkCommandMac, openCommand, sealAnswer, sealCommand } from "../provisioning/crypto/command-seal.js";
import { generateStaticKey } from "../provisioning/crypto/identity.js";
import { pairingCi, pairingPassword } from "../provisioning/pairing.js";
import { distribution, durations, rate, type MeasuredRow } from "./measure.js";

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
function codeRows(budgetMs: number): MeasuredRow[] {
  const devices = [device("app-1"), device("app-2")];
  const [first, second] = devices as [UserDevice, UserDevice];
  const now = Date.now();
  const made = (from: UserDevice): string =>
    generateCode({ key: from.key, iqId: IQ_ID, appId: from.appId, purpose: "open", pin: PIN, lastCounter: 0, now }).code;
  const userCode = made(second);
  const appCode = made(first);
  const forUser = () => {
    const verdict = validateCodeForUser({ iqId: IQ_ID, purpose: "open", code: userCode, now, expectedPin: PIN, devices });
    if (!verdict.ok) throw new Error(`bench Code refused: ${verdict.reason}`);
  };
  const forApp = () => {
    const { key, appId } = first;
    const verdict = validateCode({ key, iqId: IQ_ID, appId, purpose: "open", code: appCode, now, expectedPin: PIN, lastCounter: 0 });
    if (!verdict.ok) throw new Error(`bench Code refused: ${verdict.reason}`);
  };
  const user = rate(forUser, budgetMs);
  const app = rate(forApp, budgetMs);
  return [
    { name: "Code check, user with 2 devices (validateCodeForUser)", unit: "ops/s", values: { rate: user.rate }, samples: user.samples },
    { name: "Code check, one app (validateCode)", unit: "ops/s", values: { rate: app.rate }, samples: app.samples },
  ];
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

async function activationRow(): Promise<MeasuredRow> {
  const samples = await durations(activate, ACTIVATION_RUNS, 10);
  return {
    name: "CPace activation, both parties (start, finish, confirm, keys)",
    unit: "ms",
    values: distribution(samples, [0.95]),
    samples: samples.length,
  };
}

/**
 * A sealed "open" command as the app sends it (protocol v2: an ephemeral X25519 key per command),
 * checked, opened and answered as the IQ does: story 6's cryptography on both ends.
 */
function sealRow(budgetMs: number): MeasuredRow {
  const iq = generateStaticKey();
  const context = { appKey: randomBytes(32), iqId: IQ_ID, appId: "app-1" };
  const payload = Buffer.from(JSON.stringify({ op: "open", args: { lock: "door" }, pin: PIN, challenge: "c".repeat(22) }));
  let n = 0;
  const roundTrip = () => {
    const requestId = `r-${n++}`;
    const sealed = sealCommand({ ...context, requestId, iqStaticKey: iq.publicKey, payload });
    if (!checkCommandMac({ ...context, requestId, ...sealed })) throw new Error("bench: the MAC did not check");
    const opened = openCommand({ ...context, requestId, iqStatic: iq, epk: sealed.epk, box: sealed.box });
    sealAnswer({ ...context, requestId, answerKey: opened.answerKey, payload });
  };
  const measured = rate(roundTrip, budgetMs);
  return {
    name: `sealed command, ${payload.length} bytes: seal, MAC, open, answer (X25519 + XChaCha20-Poly1305)`,
    unit: "ops/s",
    values: { rate: measured.rate },
    samples: measured.samples,
  };
}

export async function cryptoRows(budgetMs: number): Promise<MeasuredRow[]> {
  return [...codeRows(budgetMs), await activationRow(), sealRow(budgetMs)];
}
