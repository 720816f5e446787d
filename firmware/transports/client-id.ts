/**
 * The hub's MQTT client id. Whoever connects with it takes the hub's session (the broker drops
 * the hub and hands the newcomer its subscription and queued requests), so it must be
 * unguessable: `iq-<iqId>-<128 random bits in hex>`, made at first start and kept in
 * `<stateDir>/mqtt-client-id`, readable by the hub's user only. Kept, not made at every start, so
 * that the broker can hold requests sent while the hub restarts.
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { IqError } from "../errors.js";
import { createPrivateFile } from "../private-file.js";

const RANDOM_BYTES = 16;

export function clientIdFile(stateDir: string): string {
  return join(stateDir, "mqtt-client-id");
}

/** The client id kept in the state directory, made on first use. */
export async function ensureClientId(stateDir: string, iqId: string): Promise<string> {
  const file = clientIdFile(stateDir);
  let id = await readClientId(file);
  if (id === undefined) {
    // One made by a second process starting at the same moment wins: both read it back.
    await createPrivateFile(file, Buffer.from(`iq-${iqId}-${randomBytes(RANDOM_BYTES).toString("hex")}`));
    id = (await readClientId(file)) ?? "";
  }
  if (!/^[\x21-\x7e]{1,128}$/.test(id)) {
    throw new IqError("mqtt_client_id_invalid", `${file} does not hold an MQTT client id: delete it and a new one is made at the next start`, {
      file,
    });
  }
  return id;
}

async function readClientId(file: string): Promise<string | undefined> {
  try {
    return (await readFile(file, "utf8")).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}
