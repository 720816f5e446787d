import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { CountedWarning, createLogger, untrusted } from "../../firmware/log.js";
import { freePort } from "../../bench/net.js";
import { eventually, startHubTransport } from "../support/mqtt.js";

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

describe("log times", () => {
  it("on a terminal a line starts with the full ISO 8601 UTC time, as the CLI and the events write it", () => {
    const lines: string[] = [];
    createLogger({ write: (line) => lines.push(line), timestamps: true }).info("ready");
    expect(lines[0]).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z INFO {2}ready$/);
  });
});

describe("log and passwords", () => {
  it("never prints the password of a URL, in fields, errors or the message, and keeps the user name", () => {
    for (const timestamps of [false, true]) {
      const lines: string[] = [];
      const log = createLogger({ write: (line) => lines.push(line), timestamps });
      log.info("connecting to mqtts://iq-door-1:hunter2@broker:8883", {
        url: "mqtts://iq-door-1:s3cr%40t@broker.example.net:8883/path",
        nested: { url: "wss://web:pa55@relay:443" },
        error: new Error("connect to mqtt://hub:Zz9@10.0.0.2:1883 failed"),
        plain: "mqtt://broker:1883",
      });
      const [line] = lines;
      for (const secret of ["hunter2", "s3cr%40t", "pa55", "Zz9"]) expect(line, secret).not.toContain(secret);
      expect(line).toContain("mqtts://iq-door-1:***@broker.example.net:8883/path");
      expect(line).toContain("wss://web:***@relay:443");
      expect(line).toContain("mqtt://broker:1883");
    }
  });

  it("the MQTT transport's lines about a broker it cannot reach name the URL without its password", async () => {
    const url = `mqtt://iq-door-1:topsecret@127.0.0.1:${await freePort()}`;
    const hub = await startHubTransport({ mqtt: { url } });
    await eventually(() => expect(hub.logs.some((line) => line.includes("mqtt://iq-door-1:***@127.0.0.1"))).toBe(true));
    expect(hub.logs.join("\n")).not.toContain("topsecret");
  });
});
