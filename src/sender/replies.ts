/**
 * The ERRORs the sender answers inbound messages with, and the drops it logs instead when a
 * device gave no usable place to answer. Protocol §3 / decision D2: an ERROR answering a message
 * for which no transfer is open goes to that message's Response Topic (or `{p}/dev/{id}/error`),
 * echoes its Correlation Data and carries no Response Topic property; ERRORs about an open
 * transfer are the transfer's to send (`transfer.ts`).
 * @module
 */

import {
  codeName,
  deviceTopics,
  encodeError,
  ErrorCode,
  responseTopicProblem,
} from "../protocol/mod.ts";
import type { InboundMessage, Transport } from "../transport/types.ts";
import type { SenderLog } from "./options.ts";
import type { SenderStats } from "./stats.ts";

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
  /** Replies through `transport` for devices under `prefix`. */
  constructor(
    readonly transport: Transport,
    readonly options: { prefix: string; log: SenderLog; stats: SenderStats },
  ) {}

  /** `topic` when a device may be answered there (§2.1), else null. */
  usableResponseTopic(deviceId: string, topic: string): string | null {
    return responseTopicProblem(this.options.prefix, deviceId, topic) === null ? topic : null;
  }

  /** The device's error topic, for messages without a usable Response Topic. */
  errorTopic(deviceId: string): string {
    return deviceTopics(this.options.prefix, deviceId).error;
  }

  /** Publishes an ERROR on `topic` with `correlationData` and no Response Topic (D2). */
  send(topic: string, correlationData: Uint8Array | undefined, reply: ErrorReply): void {
    const { code, message, retryAfterMs = 0, transferId = 0 } = reply;
    const { stats, log } = this.options;
    const name = codeName(ErrorCode, code);
    stats.errorsSent[name] = (stats.errorsSent[name] ?? 0) + 1;
    log.warn(`error  ${name} -> ${topic}: ${message}`);
    this.transport.publish(topic, encodeError({ code, transferId, retryAfterMs, message }), {
      qos: 1,
      correlationData,
    }).catch((err) => log.warn(`publish to "${topic}" failed: ${err}`));
  }

  /** Answers an ACK/STATUS problem where the device can hear it: its Response Topic, if usable. */
  toDevice(deviceId: string, message: InboundMessage, reply: ErrorReply): void {
    const topic = this.usableResponseTopic(deviceId, message.responseTopic ?? "");
    if (topic) this.send(topic, message.correlationData, reply);
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
