import { x25519 } from "@noble/curves/ed25519.js";
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

/** draft-irtf-cfrg-cpace-21, Appendix B.1 (CPACE-X25519-SHA512), from the CFRG repository's testvectors.json/.md. */
const B1 = {
  prs: utf8("Password"),
  ci: hexToBytes("0b415f696e69746961746f720b425f726573706f6e646572"),
  sid: hexToBytes("7e4b4791d6a8ef019b936c79fb7f2c57"),
  g: "d04bf6d41f6a289632a2e929fa29bebd51092512a7829fdde7d314b62f05a73f",
  ya: "21b4f4bd9e64ed355c3eb676a28ebedaf6d8f17bdc365995b319097153044080",
  ADa: utf8("ADa"),
  Ya: "1d13c89278cdadd826f6d8d7f887701430f8380ddc17611cdd6dc989ce0c9f32",
  yb: "848b0779ff415f0af4ea14df9dd1d3c29ac41d836c7808896c4eba19c51ac40a",
  ADb: utf8("ADb"),
  Yb: "248cccf6d5cdc3646f0ad593f9e6cef4e69d4945f8372e623512ecea32185623",
  K: "5b067effbdc0b2a0e1d907b21ebb25cfedb96a852179a847c37e43ee71322c6b",
  iskIr:
    "6e19b875f7a561d6b3ca3dbb9ef42ac55de3e717881018204b8922b4d5e53bb2" +
    "aa82c300bea7b65d2b671da71922ddf6472301b79bc270adfa8bf413285f2263",
};
/** testvectors.md, "calculate_generator with group X25519": the generator string and its hash spelled out. */
const GEN = {
  ci: hexToBytes("6f630b425f726573706f6e6465720b415f696e69746961746f72"),
  generatorString:
    "0843506163653235350850617373776f72646d" +
    "00".repeat(109) +
    "1a6f630b425f726573706f6e6465720b415f696e69746961746f72107e4b4791d6a8ef019b936c79fb7f2c57",
  hash: "92806dc608984dbf4e4aae478c6ec453ae979cc01ecc1a2a7cf49f5cee56551b",
  g: "64e8099e3ea682cfdc5cb665c057ebb514d06bf23ebc9f743b51b82242327074",
};
/** testvectors.md, "G_X25519.scalar_mult_vfy: low order points": u → scalar_mult_vfy(s, u). */
const VFY_SCALAR = "af46e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449aff";
const ZERO = "00".repeat(32);
const VFY: [string, string][] = [
  ["0000000000000000000000000000000000000000000000000000000000000000", ZERO],
  ["0100000000000000000000000000000000000000000000000000000000000000", ZERO],
  ["ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", ZERO],
  ["e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", ZERO],
  ["5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157", ZERO],
  ["edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", ZERO],
  ["daffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "d8e2c776bbacd510d09fd9278b7edcd25fc5ae9adfba3b6e040e8d3b71b21806"],
  ["eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", ZERO],
  ["dbffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "c85c655ebe8be44ba9c0ffde69f2fe10194458d137f09bbff725ce58803cdb38"],
  ["d9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "db64dafa9b8fdd136914e61461935fe92aa372cb056314e1231bc4ec12417456"],
  ["cdeb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880", "e062dcd5376d58297be2618c7498f55baa07d7e03184e8aada20bca28888bf7a"],
  ["4c9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7", "993c6ad11c4c29da9a56f7691fd0ff8d732e49de6250b6c2e80003ff4629a175"],
];
/** The shares that MUST abort a run (u0–u5 and u7). */
const ABORTING = VFY.filter(([, q]) => q === ZERO).map(([u]) => u);

describe("CPace known answers (draft-irtf-cfrg-cpace Appendix B.1, X25519 + SHA-512)", () => {
  it("computes the generator string, its hash and the generator g", () => {
    expect(bytesToHex(generatorString(B1.prs, GEN.ci, B1.sid))).toBe(GEN.generatorString);
    expect(bytesToHex(sha512(hexToBytes(GEN.generatorString)).subarray(0, 32))).toBe(GEN.hash);
    expect(bytesToHex(calculateGenerator(B1.prs, GEN.ci, B1.sid))).toBe(GEN.g);
    expect(bytesToHex(calculateGenerator(B1.prs, B1.ci, B1.sid))).toBe(B1.g);
  });

  it("computes Ya, Yb and the shared K from both sides (OpenSSL's X25519, and noble's as a second opinion)", () => {
    const g = calculateGenerator(B1.prs, B1.ci, B1.sid);
    expect(bytesToHex(scalarMult(hexToBytes(B1.ya), g))).toBe(B1.Ya);
    expect(bytesToHex(scalarMult(hexToBytes(B1.yb), g))).toBe(B1.Yb);
    expect(bytesToHex(scalarMultVfy(hexToBytes(B1.ya), hexToBytes(B1.Yb)))).toBe(B1.K);
    expect(bytesToHex(scalarMultVfy(hexToBytes(B1.yb), hexToBytes(B1.Ya)))).toBe(B1.K);
    expect(bytesToHex(x25519.scalarMult(hexToBytes(B1.ya), hexToBytes(B1.Yb)))).toBe(B1.K);
  });

  it("computes ISK_IR from transcript_ir", () => {
    const transcript = transcriptIr(hexToBytes(B1.Ya), B1.ADa, hexToBytes(B1.Yb), B1.ADb);
    expect(bytesToHex(computeIsk(B1.sid, hexToBytes(B1.K), transcript))).toBe(B1.iskIr);
  });

  it("matches the transcript_ir vectors of A.3.5", () => {
    const [a, b] = [utf8("PartyA"), utf8("PartyB")];
    expect(bytesToHex(transcriptIr(utf8("123"), a, utf8("234"), b))).toBe("03313233065061727479410332333406506172747942");
    expect(bytesToHex(transcriptIr(utf8("3456"), a, utf8("2345"), b))).toBe(
      "043334353606506172747941043233343506506172747942",
    );
  });

  it.each(VFY)("scalar_mult_vfy(s, %s) is %s (low-order and non-canonical u)", (u, q) => {
    expect(bytesToHex(scalarMultVfy(hexToBytes(VFY_SCALAR), hexToBytes(u)))).toBe(q);
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

  it("aborts on a peer share of low order (u0–u5, u7 of the draft's vectors)", () => {
    expect(ABORTING).toHaveLength(7);
    for (const share of ABORTING) {
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
