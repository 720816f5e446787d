import { stripVTControlCharacters } from "node:util";
import { describe, expect, it } from "vitest";
import { LED_TABLE, describePattern } from "../../firmware/led-table.js";
import { renderStatusLine, type StatusView } from "../../firmware/simulator.js";

/** What the terminal shows: escape sequences take no columns. */
const visible = (line: string) => stripVTControlCharacters(line);

const armed: StatusView = {
  color: "red",
  pattern: describePattern(LED_TABLE.resetArmed),
  locks: [{ name: "door", unlocked: true }],
  heldMs: 29_900,
};

describe("simulator status line", () => {
  it("fits one 80-column line while the button is held at the longest pattern, and shows the keys", () => {
    const line = visible(renderStatusLine(armed, 80));
    expect(line.length).toBeLessThanOrEqual(79);
    expect(line).toBe("● red → green → blue cycle │ door UNLOCKED │ held 29.9s │ [b]release [q]quit");
  });

  it("with the button up it shows every key", () => {
    const up = { ...armed, pattern: describePattern(LED_TABLE.claimWindow), locks: [{ name: "door", unlocked: false }], heldMs: undefined };
    expect(visible(renderStatusLine(up, 80))).toBe("● blue, fast blink │ door locked │ button up │ [b]hold [p]press [q]quit");
  });

  it("cuts the locks, never the button or the keys, when there are more than fit", () => {
    const many = { ...armed, locks: Array.from({ length: 8 }, (_, i) => ({ name: `gate-number-${i}`, unlocked: i % 2 === 0 })) };
    for (const columns of [50, 80, 120]) {
      const line = visible(renderStatusLine(many, columns));
      expect(line.length, `${columns} columns`).toBeLessThanOrEqual(columns - 1);
      expect(line).toMatch(/… │ held 29\.9s │ \[b\]release \[q\]quit$/);
    }
  });

  it("colours the LED glyph and an unlocked door without counting the escapes as width", () => {
    const line = renderStatusLine(armed, 80);
    expect(line.startsWith("\x1b[91m●\x1b[0m")).toBe(true);
    expect(line).toContain("\x1b[92mUNLOCKED\x1b[0m");
  });
});
