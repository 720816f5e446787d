/**
 * systemd/install.sh itself: what it builds, as whom, and what it leaves alone. The real run builds
 * with npm (from the registry or its cache), so that test takes a minute or two.
 */
import { execFile } from "node:child_process";
import { lstat, mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative, sep } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it, onTestFinished } from "vitest";

const REPO = join(import.meta.dirname, "../..");
const SCRIPT = join(REPO, "systemd/install.sh");
const BUILD_MS = 300_000;
/** As root the build needs an unprivileged user; nobody exists everywhere. */
const ENV = { ...process.env, IQ_HUB_BUILD_USER: "nobody" };

async function installSh(...args: string[]) {
  try {
    const { stdout, stderr } = await promisify(execFile)("sh", [SCRIPT, ...args], { env: ENV, timeout: BUILD_MS });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const { code, stdout, stderr } = error as { code: number; stdout: string; stderr: string };
    return { code, stdout, stderr };
  }
}

/** Every file under `dir` with its size, mode and mtime: a build, npm ci or prune would change some. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    // vitest keeps its own cache here while this very test runs; .git is git's (another worktree
    // of the same repository may commit meanwhile), and the installer never writes there.
    if (path.includes("node_modules/.vite") || relative(dir, path).split(sep)[0] === ".git") continue;
    const { size, mode, mtimeMs } = await lstat(path);
    files.set(path, `${size} ${mode.toString(8)} ${mtimeMs}`);
  }
  return files;
}

const tempRoot = async () => {
  const root = await mkdtemp(join(tmpdir(), "iq-hub-install-sh-"));
  onTestFinished(() => rm(root, { recursive: true, force: true }));
  return root;
};

describe("systemd/install.sh", () => {
  it("--help and --dry-run change nothing in the checkout (node_modules and dist included) or the target", async () => {
    const root = await tempRoot();
    const before = await snapshot(REPO);

    const help = await installSh("--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: sudo systemd\/install.sh \[options\]/);
    expect(help.stdout).toContain("--root DIR");

    const dry = await installSh("--dry-run", "--root", root, "--node", "/usr/bin/node");
    expect(dry, dry.stderr).toMatchObject({ code: 0 });
    expect(dry.stdout).toMatch(/^would build a copy of .* as \S+.*: npm ci --ignore-scripts; npm rebuild classic-level epoll unix-dgram usocket; npm run build; npm prune --omit=dev --ignore-scripts$/m);
    expect(dry.stdout).toContain(`would install the build into ${root}/opt/iq-hub (owned by root, writable by root only)`);
    // The plan of the system changes, from this checkout's build.
    expect(dry.stdout).toContain("create /etc/systemd/system/iq-hub.service (mode 0644)");
    expect(dry.stdout).toContain("create /usr/local/bin/iq (mode 0755)");

    expect(await readdir(root)).toEqual([]);
    const after = await snapshot(REPO);
    expect([...after].filter(([path, seen]) => before.get(path) !== seen)).toEqual([]);
    expect([...before.keys()].filter((path) => !after.has(path))).toEqual([]);
  });

  it("refuses an unknown option before doing anything", async () => {
    const result = await installSh("--prefxi", "/opt/x");
    expect(result.code).toBe(1);
    expect(result.stderr).toBe("iq-hub install: unknown option --prefxi (see --help)\n");
  });

  it(
    "builds as an unprivileged user into a prefix only root can write, with the natives rebuilt and no devDependencies; a second run changes nothing",
    async () => {
      const root = await tempRoot();
      // A running Pi where the accounts and the enabled link exist (commands are only printed under --root),
      // with a boot partition, so that the second run has nothing at all to say.
      const system = {
        "boot/firmware/config.txt": "",
        "etc/passwd": "root:x:0:0:root:/root:/bin/bash\niq-hub:x:999:999::/nonexistent:/usr/sbin/nologin\n",
        "etc/group": "root:x:0:\ngpio:x:997:iq-hub\nbluetooth:x:112:iq-hub\niq-hub:x:999:\n",
      };
      for (const [path, text] of Object.entries(system)) {
        await mkdir(dirname(join(root, path)), { recursive: true });
        await writeFile(join(root, path), text);
      }
      await mkdir(join(root, "run/systemd/system"), { recursive: true });
      const link = join(root, "etc/systemd/system/multi-user.target.wants/iq-hub.service");
      await mkdir(dirname(link), { recursive: true });
      await symlink("/etc/systemd/system/iq-hub.service", link);
      const before = await snapshot(REPO);
      const stagedBefore = await readdir(tmpdir());
      const first = await installSh("--root", root, "--node", "/usr/bin/node");
      expect(first, first.stderr).toMatchObject({ code: 0 });
      const builder = process.getuid?.() === 0 ? "nobody" : undefined;
      if (builder !== undefined) expect(first.stdout).toContain(` as ${builder}: npm ci --ignore-scripts`);
      expect(first.stdout).toContain(`installing the build into ${root}/opt/iq-hub`);
      expect(first.stdout).toContain("create /usr/local/bin/iq (mode 0755)");

      const prefix = join(root, "opt/iq-hub");
      for (const path of ["dist/firmware/main.js", "dist/firmware/relock.js", "bin/iq.js", "node_modules/epoll/build/Release/epoll.node"]) {
        const entry = await stat(join(prefix, path));
        expect(entry.uid, path).toBe(process.getuid?.());
        expect(entry.mode & 0o022, path).toBe(0);
      }
      // Only what the hub runs on: the build's tools were pruned. The staging copy is gone.
      await expect(stat(join(prefix, "node_modules/typescript"))).rejects.toThrow(/ENOENT/);
      expect((await readdir(tmpdir())).filter((name) => name.startsWith("iq-hub-build.") && !stagedBefore.includes(name))).toEqual([]);

      const second = await installSh("--root", root, "--node", "/usr/bin/node");
      expect(second, second.stderr).toMatchObject({ code: 0 });
      expect(second.stdout).toBe(`build: ${prefix} is up to date with this checkout\nnothing to change\n`);

      const after = await snapshot(REPO);
      expect([...after].filter(([path, seen]) => before.get(path) !== seen)).toEqual([]);
    },
    2 * BUILD_MS,
  );
});
