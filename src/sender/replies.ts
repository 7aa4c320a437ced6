/**
 * The ERRORs the sender answers inbound messages with, and the drops it logs instead when a
 * device gave no usable place to answer. Protocol §3 / decision D2: an ERROR answering a message
 * for which no transfer is open goes to that message's Response Topic (or `{p}/dev/{id}/error`),
 * echoes its Correlation Data and carries no Response Topic property; ERRORs about an open
 * transfer are the transfer's to send (`transfer.ts`).
 *
 * ERRORs to one device are rate-limited (protocol §6 `ERROR_BURST`): beyond the limit the input
 * is dropped without an answer, so malformed input cannot make the sender publish without bound.
 * They go through the sender's backlog, which counts every byte published.
 * @module
 */

import {
  codeName,
  deviceTopics,
  encodeError,
  ErrorCode,
  MAX_CORRELATION_BYTES,
  responseTopicProblem,
} from "../protocol/mod.ts";
import type { InboundMessage, PublishOptions } from "../transport/types.ts";
import type { SenderLog } from "./log.ts";
import { RateLimit, type RateLimitOptions } from "./rate_limit.ts";
import type { SenderStats } from "./stats.ts";

/**
 * The QoS an ERROR goes with (protocol §3): BUSY at QoS 0, every other code at QoS 1. BUSY is the
 * one ERROR that asks the device to come back, and a device that misses it asks again after its
 * idle timeout, so it needs no delivery guarantee; at QoS 1 a crowd of 10 000 waiting devices made
 * as many publications wait for the broker's PUBACK, the transport's bound refused 3 264 of them,
 * and their devices gave up (docs/performance.md, "Ten thousand devices", item 6). The other codes
 * end the device's request; one lost would leave it asking again for nothing.
 */
export function errorQos(code: number): 0 | 1 {
  return code === ErrorCode.BUSY ? 0 : 1;
}

/** Where an answer goes: the device it is for, the topic, and the Correlation Data to echo. */
export interface ReplyTo {
  deviceId: string;
  topic: string;
  correlation: Uint8Array | undefined;
}

/** One ERROR to send. */
export interface ErrorReply {
  code: number;
  message: string;
  /** Retry hint (BUSY, shutting down); 0 when none. */
  retryAfterMs?: number;
  /** Transfer the ERROR names; 0 when none. */
  transferId?: number;
}

/** Sends ERRORs and counts them and the drops in the sender's stats. */
export class Replies {
  readonly #rate: RateLimit;
  /**
   * Whether a BUSY was logged since the last sweep; the others are counted and logged as one line
   * by {@link Replies.sweep}. 10 000 devices waiting for their turn drew 116 000 BUSY lines in 8
   * minutes at 3000 devices, nine lines in ten of the sender's log.
   */
  #busyLogged = false;
  #busyNotLogged = 0;

  /**
   * Replies through `publish` (which must not throw) for devices under `prefix`, at most
   * `errorRate` to one device.
   */
  constructor(
    readonly publish: (topic: string, payload: Uint8Array, options: PublishOptions) => void,
    readonly options: {
      prefix: string;
      log: SenderLog;
      stats: SenderStats;
      errorRate: RateLimitOptions;
      now: () => number;
    },
  ) {
    this.#rate = new RateLimit(options.errorRate);
  }

  /** Devices whose ERROR rate bucket has not refilled (per-device state, for tests). */
  get perDeviceEntries(): Record<string, number> {
    return { errorRate: this.#rate.size };
  }

  /**
   * Forgets the rate of devices that have been quiet long enough and logs the BUSY answers not
   * logged one by one since the last sweep (the sender's timer, every second).
   */
  sweep(now: number): void {
    this.#rate.sweep(now);
    if (this.#busyNotLogged > 0) {
      this.options.log.warn(
        `error  BUSY to ${this.#busyNotLogged} more requests since the last line`,
      );
    }
    this.#busyLogged = false;
    this.#busyNotLogged = 0;
  }

  /** `topic` when a device may be answered there (§2.1), else null. */
  usableResponseTopic(deviceId: string, topic: string): string | null {
    return responseTopicProblem(this.options.prefix, deviceId, topic) === null ? topic : null;
  }

  /**
   * Where an ERROR answering a request goes (protocol §3.1): its Response Topic when usable, else
   * the device's error topic.
   */
  answerTopic(deviceId: string, responseTopic: string): string {
    return this.usableResponseTopic(deviceId, responseTopic) ??
      deviceTopics(this.options.prefix, deviceId).error;
  }

  /**
   * Publishes an ERROR for `to.deviceId` on `to.topic`, echoing `to.correlation` (none when it is
   * over MAX_CORRELATION_BYTES), with no Response Topic (D2); dropped instead when the device is
   * over its ERROR rate.
   */
  send(to: ReplyTo, reply: ErrorReply): void {
    const { code, message, retryAfterMs = 0, transferId = 0 } = reply;
    const { stats, log } = this.options;
    const name = codeName(ErrorCode, code);
    if (this.#rate.take(to.deviceId, this.options.now()) > 0) {
      stats.errorsSuppressed++;
      return;
    }
    stats.errorsSent[name] = (stats.errorsSent[name] ?? 0) + 1;
    if (code !== ErrorCode.BUSY || !this.#busyLogged) {
      log.warn(`error  ${name} -> ${to.topic}: ${message}`);
      if (code === ErrorCode.BUSY) this.#busyLogged = true;
    } else this.#busyNotLogged++;
    const correlation = to.correlation && to.correlation.length <= MAX_CORRELATION_BYTES
      ? to.correlation
      : undefined;
    this.publish(to.topic, encodeError({ code, transferId, retryAfterMs, message }), {
      qos: errorQos(code),
      correlationData: correlation,
    });
  }

  /** Answers an ACK/STATUS problem where the device can hear it: its Response Topic, if usable. */
  toDevice(deviceId: string, message: InboundMessage, reply: ErrorReply): void {
    const topic = this.usableResponseTopic(deviceId, message.responseTopic ?? "");
    if (topic) this.send({ deviceId, topic, correlation: message.correlationData }, reply);
    else this.drop(`${codeName(ErrorCode, reply.code)} from "${deviceId}": ${reply.message}`);
  }

  /**
   * Decodes an ACK or STATUS with `decode`; a malformed one is answered with MALFORMED_ACK
   * (naming the protocol `section`) and gives null.
   */
  decodeFromDevice<T>(
    deviceId: string,
    message: InboundMessage,
    { decode, section }: { decode: (bytes: Uint8Array) => T; section: string },
  ): T | null {
    try {
      return decode(message.payload);
    } catch (err) {
      const why = `${(err as Error).message}; see docs/protocol.md ${section}`;
      this.toDevice(deviceId, message, { code: ErrorCode.MALFORMED_ACK, message: why });
      return null;
    }
  }

  /** Logs and counts an inbound message that gets no answer. */
  drop(why: string): void {
    this.options.stats.dropped++;
    this.options.log.warn(`drop   ${why}`);
  }
}
