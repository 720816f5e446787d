import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js";
import { describe, expect, it } from "vitest";

import { ed25519Signer, ed25519Verify, publicKeyOf, x25519 as opensslX25519 } from "../../../provisioning/crypto/curves.js";
import { identityPublicKey } from "../../../provisioning/crypto/identity.js";

/**
 * The vectors run through both implementations: curves.ts (Node's OpenSSL, what the IQ and the
 * app use) and @noble/curves (the reference the project started from), so each checks the other.
 */
const IMPLEMENTATIONS = {
  openssl: {
    x25519: (k: Uint8Array, u: Uint8Array) => opensslX25519(k, u),
    x25519Public: (k: Uint8Array) => publicKeyOf("x25519", k),
    sign: (m: Uint8Array, k: Uint8Array) => ed25519Signer(k)(m),
    verify: (sig: Uint8Array, m: Uint8Array, pk: Uint8Array) => ed25519Verify(sig, m, pk),
  },
  noble: {
    x25519: (k: Uint8Array, u: Uint8Array) => x25519.scalarMult(k, u),
    x25519Public: (k: Uint8Array) => x25519.getPublicKey(k),
    sign: (m: Uint8Array, k: Uint8Array) => ed25519.sign(m, k),
    verify: (sig: Uint8Array, m: Uint8Array, pk: Uint8Array) => ed25519.verify(sig, m, pk, { zip215: false }),
  },
} as const;

describe.each(Object.entries(IMPLEMENTATIONS))("X25519 known answers (RFC 7748, the DH sealed commands use): %s", (_name, impl) => {
  it("multiplies as published (§5.2, the two single vectors)", () => {
    const vectors = [
      {
        scalar: "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
        u: "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
        out: "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
      },
      {
        scalar: "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
        u: "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
        out: "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
      },
    ];
    for (const { scalar, u, out } of vectors) {
      expect(bytesToHex(impl.x25519(hexToBytes(scalar), hexToBytes(u)))).toBe(out);
    }
  });

  it("iterates as published (§5.2: 1 and 1,000 iterations; the 1,000,000 one is skipped)", () => {
    let k: Uint8Array = hexToBytes("0900000000000000000000000000000000000000000000000000000000000000");
    let u: Uint8Array = k.slice();
    const after: Record<number, string> = {};
    for (let i = 1; i <= 1000; i++) {
      [k, u] = [impl.x25519(k, u), k];
      if (i === 1 || i === 1000) after[i] = bytesToHex(k);
    }
    expect(after[1]).toBe("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079");
    expect(after[1000]).toBe("684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51");
  });

  it("agrees on Alice and Bob's shared secret (§6.1)", () => {
    const alice = hexToBytes("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    const alicePublic = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
    const bob = hexToBytes("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    const bobPublic = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
    const shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
    expect(bytesToHex(impl.x25519Public(alice))).toBe(alicePublic);
    expect(bytesToHex(impl.x25519Public(bob))).toBe(bobPublic);
    expect(bytesToHex(impl.x25519(alice, hexToBytes(bobPublic)))).toBe(shared);
    expect(bytesToHex(impl.x25519(bob, hexToBytes(alicePublic)))).toBe(shared);
  });

  it("refuses low-order points instead of returning an all-zero secret", () => {
    const secret = hexToBytes("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    for (const u of [
      "0000000000000000000000000000000000000000000000000000000000000000",
      "0100000000000000000000000000000000000000000000000000000000000000",
      "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    ]) {
      expect(() => impl.x25519(secret, hexToBytes(u))).toThrow();
    }
  });
});

describe.each(Object.entries(IMPLEMENTATIONS))("Ed25519 known answers (RFC 8032 §7.1, the signatures of signed documents): %s", (_name, impl) => {
  const vectors = [
    {
      name: "TEST 1",
      secretKey: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
      publicKey: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
      message: "",
      signature:
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155" +
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    },
    {
      name: "TEST 2",
      secretKey: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
      publicKey: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
      message: "72",
      signature:
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da" +
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    },
    {
      name: "TEST 3",
      secretKey: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
      publicKey: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
      message: "af82",
      signature:
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac" +
        "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    },
  ];

  for (const v of vectors) {
    it(`derives, signs and verifies as published (${v.name})`, () => {
      const secretKey = hexToBytes(v.secretKey);
      const message = hexToBytes(v.message);
      expect(bytesToHex(identityPublicKey(secretKey))).toBe(v.publicKey);
      expect(bytesToHex(impl.sign(message, secretKey))).toBe(v.signature);
      const publicKey = hexToBytes(v.publicKey);
      const signature = hexToBytes(v.signature);
      expect(impl.verify(signature, message, publicKey)).toBe(true);
      const other = Uint8Array.of(...message, 0);
      expect(impl.verify(signature, other, publicKey)).toBe(false);
    });
  }
});
