import { ristretto255 } from "@noble/curves/ed25519.js";
import { bytesToNumberLE } from "@noble/curves/utils.js";
import { sha512 } from "@noble/hashes/sha2.js";
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

import { lvCat, utf8 } from "../../../provisioning/crypto/bytes.js";
import {
  calculateGenerator,
  computeIsk,
  cpaceFinish,
  cpaceStart,
  cpaceVerifyConfirm,
  deriveAppKeys,
  generatorString,
  scalarMult,
  scalarMultVfy,
  transcriptIr,
  type CpaceInputs,
} from "../../../provisioning/crypto/cpace.js";

/** draft-irtf-cfrg-cpace-21, Appendix B.3 (CPACE-RISTR255-SHA512). */
const B3 = {
  prs: utf8("Password"),
  ci: hexToBytes("0b415f696e69746961746f720b425f726573706f6e646572"),
  sid: hexToBytes("7e4b4791d6a8ef019b936c79fb7f2c57"),
  generatorString:
    "11435061636552697374726574746f3235350850617373776f726464" +
    "00".repeat(100) +
    "180b415f696e69746961746f720b425f726573706f6e646572107e4b4791d6a8ef019b936c79fb7f2c57",
  hash:
    "da6d3ddc8802fca9058755ffd3ebde08a9c2c74945901a258482a288b6663af0" +
    "6bf645c93cd1c51512307199c80e84908916d983b34af77205f90851a657ee27",
  g: "222b6b195fe84b1652badb6f6a3ae3d24341e7306967f0b8115b40d5698c7e56",
  ya: "da3d23700a9e5699258aef94dc060dfda5ebb61f02a5ea77fad53f4ff0976d08",
  ADa: utf8("ADa"),
  Ya: "d6bac480f2c386c394efc7c47adb9925dcd2630b64f240c50f8d0eec482b9157",
  yb: "d2316b454718c35362d83d69df6320f38578ed5984651435e2949762d900b80d",
  ADb: utf8("ADb"),
  Yb: "3ea7e0b19560d7c0b0f5734f63b955286dfa8232b5ebe63324e2d9e7433f7258",
  K: "80b69a8a76457ab6a4d7f887a4bf6b55a2f80ac19c333f917a05fc9887c8b40f",
  transcriptIr:
    "20d6bac480f2c386c394efc7c47adb9925dcd2630b64f240c50f8d0eec482b915703414461" +
    "203ea7e0b19560d7c0b0f5734f63b955286dfa8232b5ebe63324e2d9e7433f725803414462",
  iskIr:
    "b69effbf61b51d56401c0f65601abe428de8206feaaf0e32198896dcae7b35cd" +
    "2b38950a39dfd5d4a79164614c2984f7daa460b588c1e80c3fa2068af7900447",
  // B.3.10 / B.3.11: scalar_mult_vfy with a valid point, a non-decodable one and the identity.
  s: "7cd0e075fa7955ba52c02759a6c90dbbfc10e6d40aea8d283e407d88cf538a05",
  X: "2c3c6b8c4f3800e7aef6864025b4ed79bd599117e427c41bd47d93d654b4a51c",
  sX: "7c13645fe790a468f62c39beb7388e541d8405d1ade69d1778c5fe3e7f6b600e",
  Yi1: "2b3c6b8c4f3800e7aef6864025b4ed79bd599117e427c41bd47d93d654b4a51c",
  Yi2: "00".repeat(32),
};
const scalar = (hex: string): bigint => bytesToNumberLE(hexToBytes(hex));

describe("CPace known answers (draft-irtf-cfrg-cpace Appendix B.3, ristretto255 + SHA-512)", () => {
  it("computes the generator string, its hash and the generator g (B.3.1)", () => {
    expect(bytesToHex(generatorString(B3.prs, B3.ci, B3.sid))).toBe(B3.generatorString);
    expect(bytesToHex(sha512(hexToBytes(B3.generatorString)))).toBe(B3.hash);
    expect(bytesToHex(calculateGenerator(B3.prs, B3.ci, B3.sid).toBytes())).toBe(B3.g);
  });

  it("computes Ya, Yb and the shared K from both sides (B.3.2-B.3.4)", () => {
    const g = calculateGenerator(B3.prs, B3.ci, B3.sid);
    expect(bytesToHex(scalarMult(scalar(B3.ya), g))).toBe(B3.Ya);
    expect(bytesToHex(scalarMult(scalar(B3.yb), g))).toBe(B3.Yb);
    expect(bytesToHex(scalarMultVfy(scalar(B3.ya), hexToBytes(B3.Yb)))).toBe(B3.K);
    expect(bytesToHex(scalarMultVfy(scalar(B3.yb), hexToBytes(B3.Ya)))).toBe(B3.K);
  });

  it("computes transcript_ir and ISK_IR (B.3.5)", () => {
    const transcript = transcriptIr(hexToBytes(B3.Ya), B3.ADa, hexToBytes(B3.Yb), B3.ADb);
    expect(bytesToHex(transcript)).toBe(B3.transcriptIr);
    expect(bytesToHex(computeIsk(B3.sid, hexToBytes(B3.K), transcript))).toBe(B3.iskIr);
  });

  it("matches the transcript_ir vectors of A.3.5", () => {
    const [a, b] = [utf8("PartyA"), utf8("PartyB")];
    expect(bytesToHex(transcriptIr(utf8("123"), a, utf8("234"), b))).toBe("03313233065061727479410332333406506172747942");
    expect(bytesToHex(transcriptIr(utf8("3456"), a, utf8("2345"), b))).toBe(
      "043334353606506172747941043233343506506172747942",
    );
  });

  it("scalar_mult and scalar_mult_vfy agree on a valid point (B.3.10)", () => {
    const X = hexToBytes(B3.X);
    expect(bytesToHex(scalarMult(scalar(B3.s), ristretto255.Point.fromBytes(X)))).toBe(B3.sX);
    expect(bytesToHex(scalarMultVfy(scalar(B3.s), X))).toBe(B3.sX);
  });

  it("scalar_mult_vfy returns G.I for an undecodable point and for the identity (B.3.11)", () => {
    expect(bytesToHex(scalarMultVfy(scalar(B3.s), hexToBytes(B3.Yi1)))).toBe(B3.Yi2);
    expect(bytesToHex(scalarMultVfy(scalar(B3.s), hexToBytes(B3.Yi2)))).toBe(B3.Yi2);
  });
});

const inputs = (overrides: Partial<CpaceInputs> = {}): CpaceInputs => ({
  password: utf8("K7Q2-MX9D-4PRT"),
  ci: lvCat(utf8("app-0001"), utf8("iq-0001")),
  sid: Uint8Array.from({ length: 16 }, (_, i) => i),
  ...overrides,
});

function run(initiator: CpaceInputs, responder: CpaceInputs) {
  const app = cpaceStart("initiator", initiator);
  const iq = cpaceStart("responder", responder);
  return { app: cpaceFinish(app, iq.message), iq: cpaceFinish(iq, app.message) };
}

const failed = (code: string): unknown => expect.objectContaining({ code });

describe("CPace runs", () => {
  it("an initiator and a responder with the same inputs agree on ISK, confirm each other and derive the same keys", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 64 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.uint8Array({ minLength: 16, maxLength: 64 }),
        fc.uint8Array({ maxLength: 32 }),
        fc.uint8Array({ maxLength: 32 }),
        (password, ci, sid, adA, adB) => {
          const { app, iq } = run({ password, ci, sid, ad: adA }, { password, ci, sid, ad: adB });
          expect(bytesToHex(app.isk)).toBe(bytesToHex(iq.isk));
          expect(bytesToHex(app.peerAd)).toBe(bytesToHex(adB));
          expect(bytesToHex(iq.peerAd)).toBe(bytesToHex(adA));
          cpaceVerifyConfirm(app, iq.confirm);
          cpaceVerifyConfirm(iq, app.confirm);
          const ids = { iqId: "iq-0001", appId: "app-0001" };
          expect(deriveAppKeys(app.isk, ids)).toEqual(deriveAppKeys(iq.isk, ids));
        },
      ),
      { numRuns: 20 },
    );
  });

  it("a wrong password fails confirmation on both sides", () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 12 }), fc.string({ minLength: 1, maxLength: 12 }), (a, b) => {
        fc.pre(a !== b);
        const { app, iq } = run(inputs({ password: utf8(a) }), inputs({ password: utf8(b) }));
        expect(() => cpaceVerifyConfirm(app, iq.confirm)).toThrow(failed("cpace_confirm_failed"));
        expect(() => cpaceVerifyConfirm(iq, app.confirm)).toThrow(failed("cpace_confirm_failed"));
      }),
      { numRuns: 10 },
    );
  });

  it("another channel identifier or session id fails confirmation", () => {
    for (const change of [{ ci: utf8("someone else") }, { sid: new Uint8Array(16).fill(9) }]) {
      const { app, iq } = run(inputs(), inputs(change));
      expect(() => cpaceVerifyConfirm(iq, app.confirm)).toThrow(failed("cpace_confirm_failed"));
    }
  });

  it("a message or a tag reflected back to its sender never confirms", () => {
    const app = cpaceStart("initiator", inputs());
    const looped = cpaceFinish(app, app.message);
    expect(() => cpaceVerifyConfirm(looped, looped.confirm)).toThrow(failed("cpace_confirm_failed"));
  });

  it("aborts on a peer share that does not decode or is the identity (B.3.11)", () => {
    for (const share of [B3.Yi1, B3.Yi2]) {
      const iq = cpaceStart("responder", inputs());
      expect(() => cpaceFinish(iq, lvCat(hexToBytes(share), utf8("ADa")))).toThrow(failed("cpace_invalid_point"));
    }
  });

  it("refuses a malformed peer message", () => {
    for (const message of [new Uint8Array(0), lvCat(new Uint8Array(31), new Uint8Array(0)), Uint8Array.of(32)]) {
      const iq = cpaceStart("responder", inputs());
      expect(() => cpaceFinish(iq, message)).toThrow(failed("cpace_message_malformed"));
    }
  });

  it("a started run finishes once: its scalar is never reused", () => {
    const app = cpaceStart("initiator", inputs());
    const iq = cpaceStart("responder", inputs());
    cpaceFinish(app, iq.message);
    expect(() => cpaceFinish(app, iq.message)).toThrow(failed("cpace_state_used"));
  });

  it("sends a fresh share every run", () => {
    expect(bytesToHex(cpaceStart("initiator", inputs()).message)).not.toBe(
      bytesToHex(cpaceStart("initiator", inputs()).message),
    );
  });

  it("refuses bad inputs at the door", () => {
    const invalid = failed("crypto_input_invalid");
    expect(() => cpaceStart("initiator", inputs({ sid: new Uint8Array(15) }))).toThrow(invalid);
    expect(() => cpaceStart("initiator", inputs({ password: new Uint8Array(0) }))).toThrow(invalid);
    expect(() => cpaceStart("observer" as never, inputs())).toThrow(invalid);
  });
});

describe("deriveAppKeys", () => {
  const isk = Uint8Array.from({ length: 64 }, (_, i) => i);

  it("gives two different 32-byte keys, bound to the IQ and the app", () => {
    const keys = deriveAppKeys(isk, { iqId: "iq-0001", appId: "app-0001" });
    expect(keys.codeKey).toHaveLength(32);
    expect(keys.messageKey).toHaveLength(32);
    expect(bytesToHex(keys.codeKey)).not.toBe(bytesToHex(keys.messageKey));
    for (const other of [{ iqId: "iq-0002", appId: "app-0001" }, { iqId: "iq-0001", appId: "app-0002" }]) {
      expect(bytesToHex(deriveAppKeys(isk, other).codeKey)).not.toBe(bytesToHex(keys.codeKey));
    }
  });

  it("refuses an ISK of the wrong size", () => {
    expect(() => deriveAppKeys(new Uint8Array(32), { iqId: "iq", appId: "app" })).toThrow(
      failed("crypto_input_invalid"),
    );
  });
});
