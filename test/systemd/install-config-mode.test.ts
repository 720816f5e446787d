/** The config may hold a broker password: its file must never exist with a wider mode than its final 0640. */
import type * as fsPromises from "node:fs/promises";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { main } from "../../systemd/install.js";

const opened = vi.hoisted(() => [] as { path: string; flags: unknown; mode: unknown }[]);
vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof fsPromises>();
  return {
    ...real,
    open: (path: string, flags?: string, mode?: number) => {
      opened.push({ path, flags, mode });
      return real.open(path, flags, mode);
    },
  };
});

describe("installer file modes", () => {
  it("creates config.json with mode 0640 from the start, whatever the umask", async () => {
    const root = await mkdtemp(join(tmpdir(), "iq-hub-mode-"));
    onTestFinished(() => rm(root, { recursive: true, force: true }));
    const entry = join(root, "opt/iq-hub/dist/firmware/main.js");
    await mkdir(dirname(entry), { recursive: true });
    await writeFile(entry, "");
    const umask = process.umask(0);
    try {
      expect(await main(["--root", root, "--node", "/usr/bin/node"], () => undefined)).toBe(0);
    } finally {
      process.umask(umask);
    }
    const config = opened.filter(({ path }) => path.startsWith(join(root, "etc/iq-hub/config.json")));
    expect(config).toEqual([{ path: join(root, "etc/iq-hub/config.json.iq-hub-new"), flags: "wx", mode: 0o640 }]);
  });
});
