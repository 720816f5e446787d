/**
 * A small tmpfs of the test's own: the realest full disk and read-only file system a test can
 * have (ENOSPC and EROFS from the kernel, not an injected error). Mounting needs root with
 * CAP_SYS_ADMIN, which chmod-based tricks cannot replace: root ignores file modes. Outside CI a
 * machine that cannot mount skips these tests and says why; in CI they run, and fail if it cannot.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Tmpfs {
  dir: string;
  /** Fills every free block; returns how many bytes it took. */
  fill(): number;
  /** Frees what fill() took. */
  free(): void;
  readOnly(): void;
  readWrite(): void;
  unmount(): void;
}

const FILLER = "filler";

/** Mounts a tmpfs of `kib` KiB on a fresh directory. */
export function mountTmpfs(kib: number): Tmpfs {
  const dir = mkdtempSync(join(tmpdir(), "iq-tmpfs-"));
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${kib}k,mode=0700`, "tmpfs", dir], { stdio: "pipe" });
  let fillers = 0;
  const remount = (mode: "ro" | "rw") => execFileSync("mount", ["-o", `remount,${mode}`, dir], { stdio: "pipe" });
  return {
    dir,
    fill() {
      const { bavail, bsize } = statfsSync(dir);
      let taken = 0;
      // One file for the bulk, then a block at a time: tmpfs counts whole pages.
      for (let size = bavail * bsize; size >= 1; size = bsize) {
        try {
          writeFileSync(join(dir, `${FILLER}-${fillers++}`), Buffer.alloc(size));
          taken += size;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === "ENOSPC") return taken;
          throw error;
        }
      }
      return taken;
    },
    free() {
      for (let i = 0; i < fillers; i++) rmSync(join(dir, `${FILLER}-${i}`), { force: true });
      fillers = 0;
    },
    readOnly: () => remount("ro"),
    readWrite: () => remount("rw"),
    unmount() {
      execFileSync("umount", ["--lazy", dir], { stdio: "pipe" });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Why no tmpfs can be mounted here (undefined: it can), found by trying once. */
export function tmpfsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "mounting a tmpfs needs root";
  try {
    mountTmpfs(64).unmount();
    return undefined;
  } catch (error) {
    return `cannot mount a tmpfs here: ${(error as Error).message.split("\n")[0]}`;
  }
}
