/**
 * Malformed and hostile request payloads for the hardening tests (issue 10), the same for MQTT
 * and BLE: random bytes and text, truncated and oversized JSON, envelopes with each field of the
 * wrong type or value (huge numbers, control and format characters, lone surrogates), every plain
 * op with wrong arguments, sealed `app` requests with bad base64 and flipped bits in a real box,
 * and JSON nested thousands deep. Drawn by fast-check from a fixed seed, so every run sends the
 * same payloads; the seed is in the test's name for a rerun.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { PLAIN_OPS, PROTOCOL_VERSION } from "../../provisioning/protocol/messages.js";

/** What the payloads are made from: real values of this IQ, so many of them get past the first checks. */
export interface Material {
  /** The IQ's reply tree with a client id: a valid `replyTo`. */
  replyTo: string;
  /** A real sealed command's `args` (appId, epk, mac, box) to mutate. */
  sealed: Record<"appId" | "epk" | "mac" | "box", string>;
}

/** Values a schema must refuse wherever they stand: the JSON types, extremes, and text that breaks logs and topics. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1e308, -1e308, 2 ** 53 + 2, 5e-324, "", [], {}, "\u0000", "\u202e\u200d", "\ud800", "+/#", "$SYS", "a".repeat(5_000)),
  fc.string({ unit: "binary", maxLength: 80 }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 40 }),
  fc.double(),
  fc.bigInt().map(String),
  fc.anything({ maxDepth: 3 }),
);

const FIELDS = ["v", "id", "op", "replyTo", "expiresAt", "args"] as const;

/** A well-formed envelope, for the mutations to start from. */
function envelope(material: Material, op: string, args: unknown): Record<string, unknown> {
  return { v: PROTOCOL_VERSION, id: "hardening-1", op, replyTo: material.replyTo, expiresAt: Date.now() + 30_000, args };
}

/** `depth` arrays or objects inside each other: a parser or schema that recurses must not fall over. */
function nested(depth: number, kind: "array" | "object"): string {
  return kind === "array" ? `${"[".repeat(depth)}${"]".repeat(depth)}` : `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
}

function nestedPayload(material: Material, depth: number, kind: "array" | "object", inArgs: boolean): Uint8Array {
  const body = inArgs ? JSON.stringify(envelope(material, "pair.start", {})).replace('"args":{}', `"args":{"kind":${nested(depth, kind)}}`) : nested(depth, kind);
  return new Uint8Array(Buffer.from(body, "utf8"));
}

/** Flips one bit of a base64url value. */
function flipBit(value: string, bit: number): string {
  const bytes = Buffer.from(value, "base64url");
  const at = bit % (bytes.length * 8);
  bytes[at >> 3]! ^= 1 << (at & 7);
  return bytes.toString("base64url");
}

function payloads(material: Material): fc.Arbitrary<Uint8Array> {
  const text = (value: string) => new Uint8Array(Buffer.from(value, "utf8"));
  const json = (value: unknown) => text(JSON.stringify(value));
  const op = fc.constantFrom(...PLAIN_OPS, "app", "web.open", "open", "");
  const sealedField = fc.constantFrom("appId", "epk", "mac", "box" as const);
  return fc.oneof(
    fc.uint8Array({ maxLength: 600 }),
    fc.string({ unit: "binary", maxLength: 300 }).map(text),
    // Truncated: a valid envelope cut anywhere.
    fc.tuple(op, fc.nat()).map(([o, cut]) => {
      const whole = JSON.stringify(envelope(material, o, o === "app" ? material.sealed : {}));
      return text(whole.slice(0, cut % whole.length));
    }),
    // One field of the envelope of the wrong type or value, or missing, or one field too many.
    fc.tuple(op, fc.constantFrom(...FIELDS, "extra"), hostileValue, fc.boolean()).map(([o, field, value, drop]) => {
      const body = envelope(material, o, {});
      if (drop && field !== "extra") delete body[field];
      else body[field] = value;
      return json(body);
    }),
    // Every plain op with arguments of the wrong names, types or values.
    fc.tuple(fc.constantFrom(...PLAIN_OPS), fc.dictionary(fc.constantFrom("kind", "appId", "userId", "sid", "share", "commit", "ticket", "reveal", "confirm", "box", "afterSeq", "limit", "x"), hostileValue, { maxKeys: 6 })).map(([o, args]) =>
      json(envelope(material, o, args)),
    ),
    // A real sealed command with one field changed: a flipped bit, bad base64, the wrong type.
    fc.tuple(sealedField, fc.nat(), fc.constantFrom("flip", "base64", "hostile"), hostileValue).map(([field, bit, how, value]) => {
      const args: Record<string, unknown> = { ...material.sealed };
      if (how === "flip" && field !== "appId") args[field] = flipBit(material.sealed[field], bit);
      else if (how === "base64") args[field] = `${material.sealed[field]}=!*`;
      else args[field] = value;
      return json(envelope(material, "app", args));
    }),
    // Nested thousands deep, alone and as the arguments of a request.
    fc.tuple(fc.integer({ min: 17, max: 3_000 }), fc.constantFrom("array", "object" as const), fc.boolean()).map(([depth, kind, inArgs]) => nestedPayload(material, depth, kind, inArgs)),
  );
}

/**
 * `count` payloads from `seed`, after a few big ones: over the 256 KiB request limit, and nested
 * as deep as fits under it (a recursive walk overflows the stack long before).
 */
export function malformedPayloads(material: Material, seed: number, count: number): Uint8Array[] {
  const big = [
    ...[300 * 1024, 257 * 1024].map((size) => new Uint8Array(Buffer.from(JSON.stringify({ ...envelope(material, "status", {}), pad: "x".repeat(size) })))),
    nestedPayload(material, 120_000, "array", false),
    nestedPayload(material, 40_000, "object", true),
  ];
  return [...big, ...fc.sample(payloads(material), { seed, numRuns: count - big.length })];
}

/** The error codes the IQ may answer with: the "From the IQ" table of docs/protocol.md. */
export function documentedErrorCodes(): Set<string> {
  const doc = readFileSync(join(import.meta.dirname, "../../docs/protocol.md"), "utf8");
  const table = doc.slice(doc.indexOf("### From the IQ"), doc.indexOf("### From the app"));
  const codes = new Set<string>();
  for (const line of table.split("\n").filter((l) => l.startsWith("| `"))) {
    for (const match of line.split("|")[1]!.matchAll(/`([a-z_]+)`/g)) codes.add(match[1]!);
  }
  return codes;
}
