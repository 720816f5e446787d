/**
 * systemd's notification protocol (sd_notify): READY once the hub can open the door, WATCHDOG
 * pings while its event loop runs, STOPPING on SIGTERM. Node has no unix datagram sockets, so the
 * datagrams go to $NOTIFY_SOCKET through the optional `unix-dgram` package, as in Zigbee2MQTT.
 * Off systemd (a laptop, CI) every call is a no-op.
 */
import { createRequire } from "node:module";
import type { Logger } from "./log.js";

export interface Notifier {
  /** READY=1, with an optional STATUS= line in the same datagram. */
  ready(status?: string): void;
  stopping(): void;
  /** The one-line status `systemctl status iq-hub` shows. */
  status(text: string): void;
  /** Pings WATCHDOG=1 at half of $WATCHDOG_USEC when systemd asked for it; returns a function that stops. */
  startWatchdog(): () => void;
}

/** The part of unix-dgram used here. */
export interface UnixDgram {
  createSocket(type: "unix_dgram"): {
    send(buf: Buffer, offset: number, length: number, path: string, callback: (error?: Error) => void): void;
    close(): void;
  };
}

/** unix-dgram is CommonJS; require keeps createNotifier synchronous. */
const loadUnixDgram = (): UnixDgram => createRequire(import.meta.url)("unix-dgram") as UnixDgram;

const NO_OP: Notifier = { ready() {}, stopping() {}, status() {}, startWatchdog: () => () => {} };

/** `load` is for tests: it stands in for the optional package. */
export function createNotifier(log: Logger, env: NodeJS.ProcessEnv = process.env, load = loadUnixDgram): Notifier {
  const path = env.NOTIFY_SOCKET;
  if (path === undefined || path === "") {
    log.debug("not started by systemd (no NOTIFY_SOCKET): sd_notify off");
    return NO_OP;
  }
  // Under Type=notify systemd stops a hub that never says READY: these two are errors, not debug.
  if (path.startsWith("@")) {
    // unix-dgram copies the address with strncpy, which stops at the abstract name's leading NUL.
    log.error("NOTIFY_SOCKET is an abstract socket, which unix-dgram cannot reach: systemd will not hear READY", { path });
    return NO_OP;
  }
  let dgram: UnixDgram;
  try {
    dgram = load();
  } catch (error) {
    log.error(
      "unix-dgram is missing, so systemd will not hear READY and will stop the hub; " +
        "sudo apt-get install -y build-essential python3, then re-run systemd/install.sh",
      { error },
    );
    return NO_OP;
  }

  // A socket per datagram: unix-dgram polls each open socket for reading, and one held open would
  // keep node's event loop alive after shutdown. At one datagram per 15 s the cost is nothing.
  const send = (message: string) => {
    let socket: ReturnType<UnixDgram["createSocket"]> | undefined;
    try {
      socket = dgram.createSocket("unix_dgram");
      const buf = Buffer.from(message);
      socket.send(buf, 0, buf.length, path, (error) => {
        if (error !== undefined) log.warn("sd_notify failed", { message, error });
      });
    } catch (error) {
      log.warn("sd_notify failed", { message, error });
    } finally {
      socket?.close();
    }
  };
  // Fields are newline-separated: a newline in the text would start a field of its own.
  const statusField = (text: string) => `STATUS=${text.replace(/\n/g, " ")}`;

  return {
    ready: (status) => send(status === undefined ? "READY=1" : `READY=1\n${statusField(status)}`),
    stopping: () => send("STOPPING=1"),
    status: (text) => send(statusField(text)),
    startWatchdog() {
      const usec = Number(env.WATCHDOG_USEC);
      if (!Number.isSafeInteger(usec) || usec <= 0) {
        log.debug("systemd watchdog off (no WATCHDOG_USEC)");
        return () => {};
      }
      // Set when the watchdog is meant for another process of the service (e.g. a wrapper's child).
      const pid = env.WATCHDOG_PID;
      if (pid !== undefined && pid !== "" && Number(pid) !== process.pid) {
        log.debug("systemd watchdog is for another process", { watchdogPid: pid });
        return () => {};
      }
      const timer = setInterval(() => send("WATCHDOG=1"), Math.max(1, Math.floor(usec / 2_000)));
      // The pings prove the loop runs; they must not be what keeps it running.
      timer.unref();
      return () => clearInterval(timer);
    },
  };
}
