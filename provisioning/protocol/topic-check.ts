/**
 * Whether a topic may be published to. Reply topics come from strangers on the broker, and a
 * topic the broker finds malformed gets the publisher disconnected (mosquitto drops the client),
 * so every topic is checked before a PUBLISH is written, never after.
 */

/** Longest topic published to, in UTF-8 bytes: an IQ's own topics take under 100, the rest is room for a client id. */
export const MAX_TOPIC_BYTES = 256;
/** More levels than any topic of the tree has; aedes refuses over 100 and mosquitto over 200. */
export const MAX_TOPIC_LEVELS = 16;

/**
 * Control characters (C0, DEL, C1 including U+0085), lone surrogates (not UTF-8) and
 * noncharacters (U+FDD0–U+FDEF, U+xFFFE/U+xFFFF), which MQTT forbids or discourages in topics
 * and mosquitto refuses, and the wildcards, which a PUBLISH must not carry.
 */
const FORBIDDEN = /[\p{Cc}\p{Cs}\p{Noncharacter_Code_Point}+#]/u;

/** Why `topic` must not be published to, or undefined when it may. */
export function topicProblem(topic: string): string | undefined {
  if (new TextEncoder().encode(topic).length > MAX_TOPIC_BYTES) return `longer than ${MAX_TOPIC_BYTES} bytes`;
  if (FORBIDDEN.test(topic)) return "a control character, noncharacter, lone surrogate or wildcard";
  if (topic.startsWith("$")) return "starts with $ (the broker's own topics)";
  const levels = topic.split("/");
  if (levels.includes("")) return "an empty level";
  if (levels.length > MAX_TOPIC_LEVELS) return `more than ${MAX_TOPIC_LEVELS} levels`;
  return undefined;
}
