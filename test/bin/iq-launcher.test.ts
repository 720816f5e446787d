/**
 * `npx iq` as a newcomer meets it: a fresh clone of this commit, `npm ci`, and nothing else.
 * Runs the real npm (the registry, or its cache with --prefer-offline), so it takes a minute.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it, onTestFinished } from "vitest";

const run = promisify(execFile);
const REPO = join(import.meta.dirname, "../..");
const NPM_MS = 240_000;

/** Exit status and output of a command that may fail. */
async function attempt(file: string, args: string[], cwd: string) {
  try {
    const { stdout, stderr } = await run(file, args, { cwd, timeout: NPM_MS });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const { code, stdout, stderr } = error as { code: number | string; stdout: string; stderr: string };
    return { code, stdout, stderr };
  }
}

describe("npx iq in a fresh clone", () => {
  it(
    "works straight after npm ci, and without dist/ says it is not built yet",
    async () => {
      const dir = await mkdtemp(join(tmpdir(), "iq-clone-"));
      onTestFinished(() => rm(dir, { recursive: true, force: true }));
      // HEAD of this worktree: what is committed, not what is being edited.
      await run("git", ["clone", "--quiet", REPO, dir]);

      const ci = await attempt("npm", ["ci", "--prefer-offline", "--no-audit", "--no-fund"], dir);
      expect(ci.code, ci.stderr).toBe(0);
      const help = await attempt("npx", ["iq", "--help"], dir);
      expect(help, help.stderr).toMatchObject({ code: 0 });
      expect(help.stdout).toMatch(/^Usage: iq /);
      expect(help.stdout).toContain("claim [options]");

      await rm(join(dir, "dist"), { recursive: true });
      const unbuilt = await attempt("npx", ["iq", "--help"], dir);
      expect(unbuilt.code).toBe(1);
      expect(unbuilt.stderr).toBe(`iq: not built yet: run npm run build (in ${dir}/)\n`);
    },
    2 * NPM_MS,
  );
});
