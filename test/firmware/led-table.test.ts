import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { LED_TABLE, describePattern } from "../../firmware/led-table.js";

/** The LED column of README.md's "What the LED says" table, top to bottom. */
function readmeLedColumn(): string[] {
  const readme = readFileSync(join(import.meta.dirname, "../../README.md"), "utf8");
  const section = readme.split("## What the LED says")[1]?.split("\n## ")[0] ?? "";
  return section
    .split("\n")
    .filter((line) => line.startsWith("| ") && !line.startsWith("| state") && !line.startsWith("|---"))
    .map((line) => line.split("|")[2]!.trim());
}

describe("the LED table", () => {
  it("README.md shows every state's pattern, in the order of firmware/led-table.ts", () => {
    expect(readmeLedColumn()).toEqual(Object.values(LED_TABLE).map(describePattern));
  });

  it("gives each state a pattern of its own", () => {
    const described = Object.values(LED_TABLE).map(describePattern);
    expect(new Set(described).size).toBe(described.length);
  });
});
