/**
 * The app's side of the IQ protocol over BLE, with no broker and no network: node-ble as a
 * central (through BlueZ on this machine's system bus) finds the IQ by its advertised service
 * UUID and its info characteristic, connects, subscribes to answers, then writes each request
 * envelope framed for the link's MTU (provisioning/protocol/ble-framing.ts) and reassembles the
 * answers from notifications.
 *
 * The link is as untrusted as a broker: anyone nearby may read, inject or replay, and BlueZ hands
 * every subscribed central every answer. So, exactly as over MQTT, each answer with the request's
 * id goes to the caller's `accept`, which verifies it (signature or sealed box); one it rejects is
 * dropped and the request keeps waiting for the real one.
 */
import { randomBytes } from "node:crypto";
import type { EventEmitter } from "node:events";
import nodeBle from "node-ble";
import { z } from "zod";

import { BLE_UUIDS, MIN_MTU, type BleInfo } from "../protocol/ble.js";
import { chunkBytes, frame, Reassembler } from "../protocol/ble-framing.js";
import { PROTOCOL_VERSION, type RequestEnvelope } from "../protocol/messages.js";
import { DEFAULT_TOPIC_PREFIX, responseTopic, topicsFor } from "../protocol/topics.js";
import { DEFAULT_TIMEOUT_MS, REQUEST_LIFETIME_MS, type OutgoingRequest, type Requester } from "./client.js";
import { AppError } from "./errors.js";
import { PendingAnswers, type AcceptAnswer } from "./pending-answers.js";

export interface BleClientOptions {
  /** The local adapter (hci0…); default: the first one BlueZ lists. */
  adapter?: string;
  topicPrefix?: string;
  /** How long a request waits for its answer. */
  timeoutMs?: number;
  /** How long to look for the IQ before giving up. */
  scanTimeoutMs?: number;
  /** The clock that dates a request's expiry. */
  now?: () => number;
}

/** node-ble learns of devices by polling BlueZ; this is how often it looks. */
const POLL_MS = 100;
const DEFAULT_SCAN_MS = 10_000;
/** The largest answer taken: an events page is about 16 KiB; anything far larger is not for us. */
const MAX_ANSWER_BYTES = 1024 * 1024;

const bleInfo = z.looseObject({ iqId: z.string(), state: z.string(), v: z.number() });

interface Link {
  iqId: string;
  device: nodeBle.Device;
  requests: nodeBle.GattCharacteristic;
  responses: nodeBle.GattCharacteristic;
  mtu: number;
  reassembler: Reassembler;
  /** Writes of one request's chunks at a time: two requests' chunks must not interleave. */
  writing: Promise<void>;
}

/** node-ble keeps the properties it has no getter for (UUIDs, MTU) behind its BusHelper. */
interface WithHelper {
  helper: { prop(name: string): Promise<unknown> };
}

export class BleRequester implements Requester {
  readonly topicPrefix: string;
  readonly clientId = `iq-ble-${randomBytes(8).toString("hex")}`;
  private readonly session = nodeBle.createBluetooth();
  private readonly connected: Promise<void>;
  private readonly links = new Map<string, Promise<Link>>();
  private readonly answers = new PendingAnswers();

  constructor(private readonly options: BleClientOptions = {}) {
    this.topicPrefix = options.topicPrefix ?? DEFAULT_TOPIC_PREFIX;
    // node-ble does not listen for the bus's errors: without a listener a missing system bus would end the process.
    const bus = (this.session.bluetooth as unknown as { dbus: EventEmitter }).dbus;
    this.connected = new Promise((resolve, reject) => {
      bus.once("connect", resolve);
      // Kept for the bus's life: a later failure (bluetoothd gone, the bus closing) fails the calls under way instead.
      bus.on("error", (error: Error) => reject(new AppError("ble_unavailable", `no D-Bus system bus to reach BlueZ: ${error.message}`)));
    });
    this.connected.catch(() => undefined);
  }

  async request<T>(iqId: string, request: OutgoingRequest, accept: AcceptAnswer<T>): Promise<T> {
    const link = await this.linkTo(iqId);
    const replyTo = responseTopic(topicsFor(iqId, this.topicPrefix), this.clientId);
    const envelope: RequestEnvelope = {
      v: PROTOCOL_VERSION,
      id: request.id,
      op: request.op,
      replyTo,
      expiresAt: (this.options.now ?? Date.now)() + REQUEST_LIFETIME_MS,
      args: request.args,
    };
    const chunks = frame(Buffer.from(JSON.stringify(envelope)), link.mtu);
    const timeoutMs = this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const noAnswer = () => new AppError("no_answer", `no answer from IQ ${iqId} over BLE within ${timeoutMs / 1000} s: is it still in range?`);
    const answered = this.answers.wait({ iqId, id: envelope.id, replyTo, accept, timeoutMs, noAnswer });
    const written = link.writing.then(async () => {
      for (const chunk of chunks) await link.requests.writeValueWithResponse(Buffer.from(chunk));
    });
    link.writing = written.catch(() => undefined);
    try {
      await written;
    } catch (error) {
      // The IQ refused a chunk (an org.bluez.Error.* name), or the link is gone: next time, connect afresh.
      this.links.delete(iqId);
      this.answers.fail(envelope.id, new AppError("ble_write_failed", `could not send ${request.op} to IQ ${iqId} over BLE: ${describe(error)}`));
    }
    return answered;
  }

  watch(): Promise<() => Promise<void>> {
    return Promise.reject(new AppError("unsupported", "over BLE there are no topics to follow: use MQTT for discover and events --follow"));
  }

  /** Fails every request still waiting, disconnects and leaves the bus. */
  async close(): Promise<void> {
    this.answers.failAll(() => new AppError("client_closed", "the app closed its BLE link"));
    const links = await Promise.allSettled(this.links.values());
    this.links.clear();
    for (const link of links) {
      if (link.status !== "fulfilled") continue;
      await link.value.responses.stopNotifications().catch(() => undefined);
      await link.value.device.disconnect().catch(() => undefined);
    }
    // Not while the connection is still being set up: ending dbus-next's native unix socket
    // (usocket) before the bus has said hello crashes the process.
    await this.connected.catch(() => undefined);
    this.session.destroy();
  }

  private linkTo(iqId: string): Promise<Link> {
    let link = this.links.get(iqId);
    if (link === undefined) {
      link = this.find(iqId);
      this.links.set(iqId, link);
      link.catch(() => this.links.delete(iqId));
    }
    return link;
  }

  /** Looks through the devices advertising the IQ service until one says it is `iqId`. */
  private async find(iqId: string): Promise<Link> {
    await this.connected;
    const { bluetooth } = this.session;
    const adapter = await (this.options.adapter === undefined ? bluetooth.defaultAdapter() : bluetooth.getAdapter(this.options.adapter)).catch((error: unknown) => {
      throw new AppError("ble_unavailable", `no Bluetooth adapter${this.options.adapter === undefined ? "" : ` ${this.options.adapter}`}: ${describe(error)}`);
    });
    if (!(await adapter.isPowered())) throw new AppError("ble_unavailable", "the Bluetooth adapter is off: bluetoothctl power on (and rfkill unblock bluetooth)");
    if (!(await adapter.isDiscovering())) await adapter.startDiscovery();
    const scanMs = this.options.scanTimeoutMs ?? DEFAULT_SCAN_MS;
    const deadline = Date.now() + scanMs;
    const looked = new Set<string>();
    try {
      while (Date.now() < deadline) {
        for (const address of await adapter.devices()) {
          if (looked.has(address)) continue;
          looked.add(address);
          const device = await adapter.getDevice(address);
          const uuids = (await (device as unknown as WithHelper).helper.prop("UUIDs").catch(() => [])) as string[];
          if (!uuids.includes(BLE_UUIDS.service)) continue;
          const link = await this.open(device, iqId).catch(() => undefined);
          if (link !== undefined) return link;
        }
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
    } finally {
      if (await adapter.isDiscovering().catch(() => false)) await adapter.stopDiscovery().catch(() => undefined);
    }
    throw new AppError("iq_not_found", `no IQ ${iqId} found over BLE within ${scanMs / 1000} s: is it near, and does its log say "BLE up"?`);
  }

  /** Connects and reads who it is; undefined (and disconnected) when it is another IQ. */
  private async open(device: nodeBle.Device, iqId: string): Promise<Link | undefined> {
    await device.connect();
    const service = await (await device.gatt()).getPrimaryService(BLE_UUIDS.service);
    const info: BleInfo = bleInfo.parse(JSON.parse((await (await service.getCharacteristic(BLE_UUIDS.info)).readValue()).toString("utf8")));
    if (info.iqId !== iqId) {
      await device.disconnect();
      return undefined;
    }
    const requests = await service.getCharacteristic(BLE_UUIDS.requests);
    const responses = await service.getCharacteristic(BLE_UUIDS.responses);
    // BlueZ 5.62+ tells the link's MTU on each characteristic; before, the smallest is safe.
    const mtu = Number(await (requests as unknown as WithHelper).helper.prop("MTU").catch(() => MIN_MTU));
    const link: Link = {
      iqId,
      device,
      requests,
      responses,
      mtu,
      reassembler: new Reassembler({ maxBytes: MAX_ANSWER_BYTES, timeoutMs: this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS }),
      writing: Promise.resolve(),
    };
    responses.on("valuechanged", (value: Buffer) => this.onChunk(link, value));
    await responses.startNotifications();
    return link;
  }

  private onChunk(link: Link, value: Buffer): void {
    let message: Uint8Array | undefined;
    try {
      message = link.reassembler.push(value, chunkBytes(link.mtu));
    } catch {
      // Another central's answer cut to this link's MTU, or a chunk lost: wait for the next first chunk.
      return;
    }
    if (message !== undefined) this.answers.answer(message);
  }
}

function describe(error: unknown): string {
  const { type, text, message } = error as { type?: string; text?: string; message?: string };
  return type === undefined ? (message ?? String(error)) : `${type}: ${text ?? ""}`;
}

