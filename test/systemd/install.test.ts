import { execFile } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { validateConfig } from "../../firmware/config.js";
import { BLOCK_BEGIN, BLOCK_END, main, mergeBootBlock, renderBootBlock } from "../../systemd/install.js";

const BOOT_CONFIG = "boot/firmware/config.txt";
const STOCK_CONFIG_TXT = "dtparam=audio=on\ncamera_auto_detect=1\n\n[cm5]\ndtoverlay=dwc2,dr_mode=host\n";
/** A Pi where the user, its groups and the enabled link exist, as after a first real install. */
const INSTALLED_SYSTEM = {
  "etc/passwd": "root:x:0:0:root:/root:/bin/bash\niq-hub:x:999:999::/home/iq-hub:/usr/sbin/nologin\n",
  "etc/group": "root:x:0:\ngpio:x:997:pi,iq-hub\nbluetooth:x:112:iq-hub\niq-hub:x:999:\n",
};

const roots: string[] = [];
afterEach(async () => {
  await Promise.all(roots.splice(0).map((root) => rm(root, { recursive: true, force: true })));
});

/** A temp tree holding a built checkout in /opt/iq-hub plus `files`; `booted`: systemd runs it, as on a Pi. */
async function tree(files: Record<string, string> = {}, booted = true): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "iq-hub-install-"));
  roots.push(root);
  for (const [path, text] of Object.entries({ "opt/iq-hub/dist/firmware/main.js": "", ...files })) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), text);
  }
  if (booted) await mkdir(join(root, "run/systemd/system"), { recursive: true });
  return root;
}

async function enable(root: string): Promise<void> {
  const link = join(root, "etc/systemd/system/multi-user.target.wants/iq-hub.service");
  await mkdir(dirname(link), { recursive: true });
  await symlink("/etc/systemd/system/iq-hub.service", link);
}

async function install(root: string, ...args: string[]): Promise<{ code: number; out: string[] }> {
  const out: string[] = [];
  const code = await main(["--root", root, "--prefix", "/opt/iq-hub", "--node", "/usr/bin/node", ...args], (line) =>
    out.push(...line.split("\n")),
  );
  return { code, out };
}

const read = (root: string, path: string) => readFile(join(root, path), "utf8");
const exists = (path: string) => stat(path).then(() => true, () => false);

describe("installer", () => {
  it("a dry run shows the unit, the default config, the config.txt block and the commands, and writes nothing", async () => {
    const root = await tree({ [BOOT_CONFIG]: STOCK_CONFIG_TXT });
    const { code, out } = await install(root, "--dry-run");
    expect(code).toBe(0);
    expect(out).toContain("create /etc/systemd/system/iq-hub.service (mode 0644)");
    expect(out).toContain("+ ExecStart=/usr/bin/node --max-semi-space-size=2 --optimize-for-size /opt/iq-hub/dist/firmware/main.js");
    expect(out).toContain("+ Type=notify");
    expect(out).toContain("create /etc/iq-hub/config.json (mode 0640)");
    expect(out).toContain('+   "locks": [');
    expect(out).toContain("update /boot/firmware/config.txt");
    expect(out).toContain("  dtoverlay=dwc2,dr_mode=host");
    for (const line of [BLOCK_BEGIN, "[all]", "gpio=17=ip,pu", "gpio=27=op,dl", "gpio=22=op,dl", "gpio=23=op,dl", "gpio=24=op,dl", BLOCK_END]) {
      expect(out).toContain(`+ ${line}`);
    }
    expect(out).toContain("run: groupadd --system gpio");
    expect(out).toContain("run: useradd --system --no-create-home --shell /usr/sbin/nologin --user-group --groups gpio iq-hub");
    expect(out).toContain("create /etc/dbus-1/system.d/iq-hub.conf (mode 0644)");
    expect(out).toContain('+   <policy user="iq-hub">');
    expect(out).toContain("run: systemctl reload dbus.service");
    expect(out).toContain("run: chown root:iq-hub /etc/iq-hub/config.json");
    expect(out).toContain("run: systemctl daemon-reload");
    expect(out).toContain("run: systemctl enable --now iq-hub.service");
    expect(out).toContain("+ ExecStopPost=/usr/bin/node /opt/iq-hub/dist/firmware/relock.js");
    expect(out).toContain("create /usr/local/bin/iq (mode 0755)");
    expect(out).toContain("+ export IQ_CLI=iq");
    expect(out).toContain('+ exec /usr/bin/node /opt/iq-hub/bin/iq.js "$@"');
    expect(out.at(-1)).toMatch(/^a reboot would be needed: \/boot\/firmware\/config.txt/);

    expect(await exists(join(root, "etc"))).toBe(false);
    expect(await read(root, BOOT_CONFIG)).toBe(STOCK_CONFIG_TXT);
  });

  it("a real run writes unit, config and block; a second run changes nothing", async () => {
    const root = await tree({ [BOOT_CONFIG]: STOCK_CONFIG_TXT, ...INSTALLED_SYSTEM });
    await enable(root);
    const first = await install(root);
    expect(first.code).toBe(0);
    // The unit is new on an enabled service: reload and restart, printed only under --root.
    expect(first.out).toContain(`not run under --root ${root}: systemctl daemon-reload`);
    expect(first.out).toContain(`not run under --root ${root}: systemctl restart iq-hub.service`);
    expect(first.out.at(-1)).toMatch(/^reboot needed/);

    const unit = await read(root, "etc/systemd/system/iq-hub.service");
    expect(unit).toContain("ExecStart=/usr/bin/node --max-semi-space-size=2 --optimize-for-size /opt/iq-hub/dist/firmware/main.js\n");
    expect(unit).not.toMatch(/@[A-Z]+@|^ProtectKernelTunables=/m);
    const defaults = validateConfig({});
    expect(JSON.parse(await read(root, "etc/iq-hub/config.json"))).toEqual({
      locks: defaults.locks,
      led: defaults.led,
      button: defaults.button,
    });
    expect((await stat(join(root, "etc/iq-hub/config.json"))).mode & 0o777).toBe(0o640);
    expect(await read(root, BOOT_CONFIG)).toBe(`${STOCK_CONFIG_TXT}${renderBootBlock(defaults).join("\n")}\n`);

    expect((await stat(join(root, "usr/local/bin/iq"))).mode & 0o777).toBe(0o755);
    expect(await read(root, "etc/dbus-1/system.d/iq-hub.conf")).toBe(await readFile(join(import.meta.dirname, "../../systemd/iq-hub-dbus.conf"), "utf8"));
    expect(first.out).toContain(`not run under --root ${root}: systemctl reload dbus.service`);

    const files = ["etc/systemd/system/iq-hub.service", "etc/iq-hub/config.json", BOOT_CONFIG, "usr/local/bin/iq", "etc/dbus-1/system.d/iq-hub.conf"];
    const before = await Promise.all(files.map((path) => readFile(join(root, path))));
    const second = await install(root);
    expect(second).toEqual({ code: 0, out: ["nothing to change"] });
    const after = await Promise.all(files.map((path) => readFile(join(root, path))));
    after.forEach((bytes, i) => expect(bytes.equals(before[i]!), files[i]).toBe(true));
  });

  it("where systemd does not run (a chroot, an image being built) it only enables the unit, and says so", async () => {
    const root = await tree({ [BOOT_CONFIG]: STOCK_CONFIG_TXT, ...INSTALLED_SYSTEM }, false);
    const { code, out } = await install(root);
    expect(code).toBe(0);
    expect(out.filter((line) => line.startsWith("run: systemctl"))).toEqual(["run: systemctl enable iq-hub.service"]);
    expect(out).toContain(
      "note: systemd is not running here (/run/systemd/system is missing: a chroot or an image being built): the service is enabled and starts at the next boot",
    );
    await enable(root);
    expect((await install(root)).out).toEqual(["nothing to change"]);
  });

  it("an old managed block is replaced in place, other lines stay, and exactly one block remains", async () => {
    const old = [
      "dtparam=audio=on",
      "# BEGIN iq-hub (an older marker)",
      "gpio=4=ip,pu",
      "# END iq-hub",
      "camera_auto_detect=1",
      "# BEGIN iq-hub",
      "gpio=9=op,dh",
      "# END iq-hub",
      "[pi4]",
      "arm_boost=1",
      "",
    ].join("\n");
    const root = await tree({ [BOOT_CONFIG]: old, ...INSTALLED_SYSTEM });
    expect((await install(root)).code).toBe(0);
    const text = await read(root, BOOT_CONFIG);
    expect(text).toBe(
      ["dtparam=audio=on", ...renderBootBlock(validateConfig({})), "camera_auto_detect=1", "[pi4]", "arm_boost=1", ""].join("\n"),
    );
    expect(text.match(/# BEGIN iq-hub/g)).toHaveLength(1);
  });

  it("never overwrites an existing /etc/iq-hub/config.json and takes the pins from it", async () => {
    const owners = `${JSON.stringify({ locks: [{ name: "gate", pin: 26, activeLow: true }] })}\n`;
    const root = await tree({ [BOOT_CONFIG]: "", "etc/iq-hub/config.json": owners });
    const { code, out } = await install(root);
    expect(code).toBe(0);
    expect(out.filter((line) => /^(create|update|run: chown) .*\/etc\/iq-hub\/config.json/.test(line))).toEqual([]);
    expect(await read(root, "etc/iq-hub/config.json")).toBe(owners);
    expect(await read(root, BOOT_CONFIG)).toContain("gpio=26=op,dh\n");
  });

  it("takes the pins from --config and installs that file when none is installed", async () => {
    const given = `${JSON.stringify({
      locks: [{ name: "door", pin: 5 }],
      led: { red: 6, green: 13, blue: 19, commonAnode: true },
      button: { pin: 16, activeLow: false },
    })}\n`;
    const root = await tree({ [BOOT_CONFIG]: "", "home/pi/wiring.json": given });
    expect((await install(root, "--config", join(root, "home/pi/wiring.json"))).code).toBe(0);
    expect(await read(root, "etc/iq-hub/config.json")).toBe(given);
    const block = await read(root, BOOT_CONFIG);
    for (const line of ["gpio=16=ip,pd", "gpio=5=op,dl", "gpio=6=op,dh", "gpio=13=op,dh", "gpio=19=op,dh"]) {
      expect(block).toContain(`${line}\n`);
    }
  });

  it("refuses a --config that differs from the installed config, and writes nothing", async () => {
    const root = await tree({
      [BOOT_CONFIG]: STOCK_CONFIG_TXT,
      "etc/iq-hub/config.json": "{}\n",
      "tmp/other.json": `${JSON.stringify({ locks: [{ name: "door", pin: 5 }] })}\n`,
    });
    const { code, out } = await install(root, "--config", join(root, "tmp/other.json"));
    expect(code).toBe(1);
    expect(out.join("\n")).toMatch(/\/etc\/iq-hub\/config.json exists and differs from .*other.json/);
    expect(await read(root, BOOT_CONFIG)).toBe(STOCK_CONFIG_TXT);
    expect(await exists(join(root, "etc/systemd"))).toBe(false);
  });

  it("an invalid installed config stops the install with the config's own message", async () => {
    const root = await tree({ [BOOT_CONFIG]: "", "etc/iq-hub/config.json": '{"button": {"pin": 40}}\n' });
    const { code, out } = await install(root);
    expect(code).toBe(1);
    expect(out.join("\n")).toContain("config: button.pin:");
  });

  it("uses /boot/config.txt on older systems", async () => {
    const root = await tree({ "boot/config.txt": "gpu_mem=16\n" });
    expect((await install(root)).code).toBe(0);
    expect(await read(root, "boot/config.txt")).toContain(`gpu_mem=16\n${BLOCK_BEGIN}\n`);
    expect(await exists(join(root, BOOT_CONFIG))).toBe(false);
  });

  it("creates no config.txt when there is none, and prints the lines to add by hand", async () => {
    const root = await tree();
    const { code, out } = await install(root);
    expect(code).toBe(0);
    expect(out.some((line) => line.startsWith("note: neither /boot/firmware/config.txt nor /boot/config.txt exists"))).toBe(true);
    expect(out).toContain("gpio=17=ip,pu");
    expect(out.at(-1)).toBe("no reboot needed");
    expect(await exists(join(root, "boot"))).toBe(false);
  });

  it("refuses a prefix the service could not see", async () => {
    const root = await tree({ [BOOT_CONFIG]: "" });
    const { code, out } = await install(root, "--prefix", "/home/pi/iq-hub");
    expect(code).toBe(1);
    expect(out.join("\n")).toContain("cannot see /home (ProtectHome=yes)");
  });

  it("refuses a prefix that is not built; a dry run only notes it, since install.sh builds first", async () => {
    const root = await tree({ [BOOT_CONFIG]: "" });
    const { code, out } = await install(root, "--prefix", "/srv/iq-hub");
    expect(code).toBe(1);
    expect(out.join("\n")).toContain("/srv/iq-hub/dist/firmware/main.js does not exist");
    const dry = await install(root, "--prefix", "/srv/iq-hub", "--dry-run");
    expect(dry.code).toBe(0);
    expect(dry.out).toContain("note: /srv/iq-hub/dist/firmware/main.js does not exist yet: systemd/install.sh builds and installs it there first");
  });

  it("refuses a prefix, or a directory above it, that others can write to: root runs that code", async () => {
    for (const [dir, path] of [
      ["opt", "/opt"],
      ["opt/iq-hub/dist/firmware", "/opt/iq-hub/dist/firmware"],
    ] as const) {
      const root = await tree({ [BOOT_CONFIG]: "" });
      await chmod(join(root, dir), 0o777);
      const { code, out } = await install(root, "--dry-run");
      expect(code, dir).toBe(1);
      expect(out.join("\n")).toContain(`--prefix: ${path} is writable by others (mode 0777), so someone other than root could change what root runs`);
    }
    const root = await tree({ [BOOT_CONFIG]: "" });
    await chmod(join(root, "opt/iq-hub/dist/firmware/main.js"), 0o666);
    expect((await install(root)).out.join("\n")).toContain("--prefix: /opt/iq-hub/dist/firmware/main.js is writable by others (mode 0666)");
    expect(await exists(join(root, "etc"))).toBe(false);
  });

  it("refuses a node binary that others can write to", async () => {
    const root = await tree({ [BOOT_CONFIG]: "", "usr/bin/node": "" });
    await chmod(join(root, "usr/bin/node"), 0o775);
    const { code, out } = await install(root);
    expect(code).toBe(1);
    expect(out.join("\n")).toContain("--node: /usr/bin/node is writable by others (mode 0775)");
  });

  it("leaves an iq command that is not its own alone, and says where the CLI is", async () => {
    const root = await tree({ [BOOT_CONFIG]: "", "usr/local/bin/iq": "#!/bin/sh\necho someone else's iq\n" });
    const { code, out } = await install(root);
    expect(code).toBe(0);
    expect(out).toContain("note: /usr/local/bin/iq exists and is not iq-hub's: left alone (the companion CLI is /opt/iq-hub/bin/iq.js)");
    expect(await read(root, "usr/local/bin/iq")).toBe("#!/bin/sh\necho someone else's iq\n");
  });

  it.skipIf(process.platform !== "linux")("systemd-analyze verify has nothing to say about the installed unit", async () => {
    const root = await tree({ [BOOT_CONFIG]: "" });
    // ExecStart must name a node that exists here: verify checks it.
    expect((await install(root, "--node", process.execPath)).code).toBe(0);
    const unit = join(root, "etc/systemd/system/iq-hub.service");
    const verify = promisify(execFile)("systemd-analyze", ["verify", unit]).catch((error: NodeJS.ErrnoException & { stdout?: string; stderr?: string }) => {
      if (error.code === "ENOENT") throw new Error("systemd-analyze is missing: apt-get install -y systemd");
      return { stdout: error.stdout ?? "", stderr: `${error.stderr ?? ""}\n(exit ${String(error.code)})` };
    });
    // It exits 0 on warnings such as unknown keys: any output at all is a failure.
    expect(await verify).toEqual({ stdout: "", stderr: "" });
  });

  it.skipIf(process.platform !== "linux")("systemd-analyze security rates the installed unit's exposure at 2.0 or less", async () => {
    const root = await tree({ [BOOT_CONFIG]: "" });
    expect((await install(root)).code).toBe(0);
    const unit = join(root, "etc/systemd/system/iq-hub.service");
    const { stdout } = await promisify(execFile)("systemd-analyze", ["security", "--offline=true", "--no-pager", unit]);
    const score = Number(/Overall exposure level for iq-hub\.service: (\d+\.\d)/.exec(stdout)?.[1]);
    console.info(`systemd-analyze security: exposure ${score}`);
    expect(score).toBeLessThanOrEqual(2.0);
    // The hardening must leave GPIO usable: sysfs writable, and no ProtectKernelTunables= (all of /sys read-only).
    const text = await readFile(unit, "utf8");
    expect(text).toMatch(/^ReadWritePaths=\/sys\/class\/gpio \/sys\/devices$/m);
    expect(text).not.toMatch(/^(ProtectKernelTunables|PrivateDevices)=/m);
    expect(text).toMatch(/^SupplementaryGroups=gpio$/m);
  });
});

describe("config.txt block", () => {
  const pinsOf = (raw: unknown) => validateConfig(raw);

  it("keeps an active-low relay locked and a common-anode LED off by driving them high", () => {
    const block = renderBootBlock(pinsOf({ locks: [{ name: "door", pin: 27, activeLow: true }], led: { commonAnode: true } }));
    expect(block.filter((line) => line.startsWith("gpio="))).toEqual([
      "gpio=17=ip,pu",
      "gpio=27=op,dh",
      "gpio=22=op,dh",
      "gpio=23=op,dh",
      "gpio=24=op,dh",
    ]);
  });

  it("pulls an active-high button down", () => {
    expect(renderBootBlock(pinsOf({ button: { activeLow: false } }))).toContain("gpio=17=ip,pd");
  });

  it("gives every lock its own line", () => {
    const block = renderBootBlock(pinsOf({ locks: [{ name: "door", pin: 27 }, { name: "gate", pin: 5, activeLow: true }] }));
    expect(block).toContain("gpio=27=op,dl");
    expect(block).toContain("gpio=5=op,dh");
  });

  it("is appended under its own [all], so a model section before it does not swallow it", () => {
    const block = ["# BEGIN iq-hub", "[all]", "gpio=17=ip,pu", "# END iq-hub"];
    expect(mergeBootBlock("[pi4]\narm_boost=1", block)).toBe(`[pi4]\narm_boost=1\n${block.join("\n")}\n`);
  });

  it("keeps CRLF line ends of a config.txt edited on Windows", () => {
    expect(mergeBootBlock("a=1\r\nb=2\r\n", ["# BEGIN iq-hub", "# END iq-hub"])).toBe("a=1\r\nb=2\r\n# BEGIN iq-hub\r\n# END iq-hub\r\n");
  });

  it("refuses a block that never ends rather than dropping the rest of the file", () => {
    expect(() => mergeBootBlock("a=1\n# BEGIN iq-hub\ngpio=17=ip,pu\nb=2\n", ["x"])).toThrow(/without "# END iq-hub"/);
  });
});
