import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { CountedWarning, createLogger, untrusted } from "../../firmware/log.js";

describe("log lines about input", () => {
  it("untrusted text is cut to its limit and its control and format characters are escaped", () => {
    expect(untrusted("res/x\ry\u001b[2J\u0085\u2028\u202e\\", 80)).toBe("res/x\\u{d}y\\u{1b}[2J\\u{85}\\u{2028}\\u{202e}\\u{5c}");
    expect(untrusted("x".repeat(1_000_000), 10)).toBe("xxxxxxxxxx…(1000000 chars)");
  });

  describe("a counted warning", () => {
    beforeEach(() => vi.useFakeTimers());
    afterEach(() => vi.useRealTimers());

    it("logs the first, counts the rest of the minute in one line, and starts again", () => {
      const lines: string[] = [];
      const warning = new CountedWarning(createLogger({ write: (line) => lines.push(line) }), "dropped");
      for (let i = 0; i < 1_000; i += 1) warning.note({ i });
      expect(lines).toEqual(["level=warn msg=dropped i=0"]);
      vi.advanceTimersByTime(60_000);
      expect(lines).toEqual(["level=warn msg=dropped i=0", 'level=warn msg="dropped (999 more in 60 s)"']);
      warning.note({ i: 1_000 });
      expect(lines).toHaveLength(3);
    });
  });
});
