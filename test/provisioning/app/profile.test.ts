import { chmod, mkdir, open, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { Profile, profilePath, writeAtomically } from "../../../provisioning/app/profile.js";
import { profileWith, someActivation, tempHome } from "./temp-home.js";

describe("profile files", () => {
  it("a profile is written 0600 in a 0700 directory", async () => {
    const profile = await profileWith({ "iq-one": someActivation() });

    expect((await stat(profile.file)).mode & 0o777).toBe(0o600);
    expect((await stat(dirname(profile.file))).mode & 0o777).toBe(0o700);
  });

  it("a profile other users can read is refused, saying how to fix it", async () => {
    const profile = await profileWith({ "iq-one": someActivation() });
    await chmod(profile.file, 0o644);

    await expect(profile.read()).rejects.toMatchObject({
      code: "profile_insecure",
      message: expect.stringContaining(`chmod 600 ${profile.file}`) as string,
    });
    await expect(profile.update(() => undefined)).rejects.toMatchObject({ code: "profile_insecure" });
  });

  it("a profile that does not exist yet reads as empty and is created by the first change", async () => {
    const profile = Profile.at({ home: tempHome() });

    expect(await profile.read()).toEqual({ format: "iq-profile/2", iqs: {}, backups: {} });
    await profile.update((data) => {
      data.broker = "mqtt://hub.example:1883";
    });
    expect((await profile.read()).broker).toBe("mqtt://hub.example:1883");
  });

  it("a profile from before the backup list reads its one backup as a list of one, never restored", async () => {
    const profile = Profile.at({ home: tempHome() });
    const backup = { format: "iq-hub-backup/1", iqId: "iq-one", createdAt: "2026-01-01T12:00:00.000Z", users: [], locks: [], settings: {} };
    await writeAtomically(profile.file, JSON.stringify({ format: "iq-profile/2", iqs: {}, backups: { "iq-one": backup } }));

    expect((await profile.read()).backups).toEqual({ "iq-one": [{ backup, restored: false }] });
    await profile.update(() => undefined);
    expect(JSON.parse(await readFile(profile.file, "utf8"))).toMatchObject({ backups: { "iq-one": [{ backup, restored: false }] } });
  });

  it("a change replaces the file by rename, so a reader of the old file still sees it whole", async () => {
    const profile = await profileWith({ "iq-one": someActivation() });
    const before = await readFile(profile.file, "utf8");
    const reader = await open(profile.file, "r");
    try {
      await profile.update((data) => {
        data.iqs["iq-two"] = someActivation();
      });
      expect((await reader.stat()).ino).not.toBe((await stat(profile.file)).ino);
      expect(await reader.readFile("utf8")).toBe(before);
    } finally {
      await reader.close();
    }
    expect(Object.keys((await profile.read()).iqs)).toEqual(["iq-one", "iq-two"]);
    expect(await readdir(dirname(profile.file))).toEqual(["default.json"]);
  });

  it("a write that fails leaves the old file and no temporary file behind", async () => {
    const home = tempHome();
    await mkdir(home, { recursive: true });
    // A directory in the way makes the final rename fail after the temporary file was written.
    const target = join(home, "blocked.json");
    await mkdir(target);

    await expect(writeAtomically(target, "{}")).rejects.toMatchObject({ code: "profile_unwritable" });
    expect(await readdir(home)).toEqual(["blocked.json"]);
  });

  it("a change that throws writes nothing", async () => {
    const profile = await profileWith({ "iq-one": someActivation({ codeCounter: 7 }) });

    await expect(
      profile.update((data) => {
        data.iqs["iq-one"]!.codeCounter = 8;
        throw new Error("changed my mind");
      }),
    ).rejects.toThrow("changed my mind");
    expect((await profile.read()).iqs["iq-one"]?.codeCounter).toBe(7);
  });

  it("concurrent changes in one process are all kept", async () => {
    const profile = await profileWith({ "iq-one": someActivation({ codeCounter: 0 }) });

    await Promise.all(
      Array.from({ length: 10 }, () =>
        profile.update((data) => {
          data.iqs["iq-one"]!.codeCounter += 1;
        }),
      ),
    );
    expect((await profile.read()).iqs["iq-one"]?.codeCounter).toBe(10);
  });

  it("a damaged profile is refused with the file and the field named", async () => {
    const profile = await profileWith({ "iq-one": someActivation() });
    const data = JSON.parse(await readFile(profile.file, "utf8")) as { iqs: Record<string, { codeCounter: unknown }> };
    data.iqs["iq-one"]!.codeCounter = "many";
    await writeFile(profile.file, JSON.stringify(data));

    await expect(profile.read()).rejects.toMatchObject({
      code: "profile_invalid",
      message: expect.stringMatching(/default\.json is damaged at iqs\.iq-one\.codeCounter/) as string,
    });
  });

  it("the profile is named by option, else IQ_PROFILE, else default, inside IQ_HOME", () => {
    const env = { IQ_HOME: "/srv/iq", IQ_PROFILE: "phone" };

    expect(profilePath({ env })).toEqual({ name: "phone", file: "/srv/iq/phone.json" });
    expect(profilePath({ env, name: "web" }).file).toBe("/srv/iq/web.json");
    expect(profilePath({ env: { IQ_HOME: "/srv/iq" } }).file).toBe("/srv/iq/default.json");
    expect(profilePath({ env: { HOME: "/home/bob" } }).file).toMatch(/\.config\/iq\/default\.json$/);
  });

  it("a profile name cannot point outside IQ_HOME", () => {
    expect(() => profilePath({ env: {}, name: "../etc/passwd" })).toThrow(/profile name/);
  });
});
