/**
 * What the installer changes on the target, as data: files to write and commands to run.
 * `plan()` builds a list of them from what differs, `apply()` makes them, `describe()` shows them.
 */
import { readFile } from "node:fs/promises";

export type Change =
  /**
   * `path` is the path on the target system, without `root`. `mode` is set only where it matters.
   * `hidden`: a private key, whose text is never shown; `conceal`: secrets shown as ********.
   */
  | { kind: "write"; path: string; before: string | undefined; after: string; mode?: number; hidden?: boolean; conceal?: readonly string[] }
  | { kind: "run"; argv: readonly string[] };

export type WriteChange = Extract<Change, { kind: "write" }>;

export function writeIfChanged(
  path: string,
  before: string | undefined,
  after: string,
  mode?: number,
  secrecy: Pick<WriteChange, "hidden" | "conceal"> = {},
): Change[] {
  return before === after ? [] : [{ kind: "write", path, before, after, mode, ...secrecy }];
}

export const run = (...argv: string[]): Change => ({ kind: "run", argv });

export async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

export function splitLines(text: string): string[] {
  const lines = text.split(/\r?\n/);
  if (lines.at(-1) === "") lines.pop();
  return lines;
}
