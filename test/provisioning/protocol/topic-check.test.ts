import { describe, expect, it } from "vitest";
import { MAX_TOPIC_BYTES, topicProblem } from "../../../provisioning/protocol/topic-check.js";

describe("topics the hub may publish to", () => {
  it.for([
    "iq/v1/iq-a/res/app-1",
    "iq/v1/iq-a/res/été/日本",
    "iq/v1/iq-a/res/with space",
    `a/${"é".repeat((MAX_TOPIC_BYTES - 2) / 2)}`,
  ])("%s: fine", (topic) => {
    expect(topicProblem(topic)).toBeUndefined();
  });

  it.for([
    ["NUL", "res/x\u0000y"],
    ["TAB", "res/x\ty"],
    ["LF", "res/x\ny"],
    ["CR", "res/x\ry"],
    ["ESC", "res/x\u001by"],
    ["DEL", "res/x\u007fy"],
    ["C1 NEL", "res/x\u0085y"],
    ["C1 CSI", "res/x\u009by"],
    ["U+FFFE", "res/x\ufffey"],
    ["U+FFFF", "res/x\uffffy"],
    ["U+FDD0", "res/x\ufdd0y"],
    ["U+FDEF", "res/x\ufdefy"],
    ["U+10FFFF", "res/x\u{10ffff}y"],
    ["a lone surrogate (not UTF-8)", "res/x\ud800y"],
    ["+", "res/+"],
    ["#", "res/#"],
    ["empty", ""],
    ["an empty level", "res//x"],
    ["a trailing /", "res/x/"],
    ["$", "$SYS/x"],
    ["too long", `res/${"x".repeat(MAX_TOPIC_BYTES)}`],
    ["too long in bytes", `res/${"é".repeat(MAX_TOPIC_BYTES / 2)}`],
    ["too many levels", Array.from({ length: 17 }, () => "a").join("/")],
  ])("%s: refused", ([, topic]) => {
    expect(topicProblem(topic!)).toBeTypeOf("string");
  });
});
