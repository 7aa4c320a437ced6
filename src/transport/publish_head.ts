/**
 * The bytes of an MQTT PUBLISH packet before its payload, for QoS 0 (MQTT 5 §3.3, MQTT 3.1.1
 * §3.3): fixed header, remaining length, topic name and, in MQTT 5, the properties. The transport's
 * fast path (mqtt_client.ts) encodes them once per topic and payload length and writes each
 * CHUNK behind them, instead of MQTT.js encoding the same topic and properties for every CHUNK
 * (3.4 µs of 5.8 per CHUNK, docs/performance.md). Byte for byte what MQTT.js 5 writes through
 * mqtt-packet for `client.publish(topic, payload, { qos: 0, properties })`: same property order
 * (Response Topic, then Correlation Data), an empty property length in MQTT 5 when there are none
 * (tests/transport_fast_path_test.ts compares them).
 * @module
 */

/** The MQTT 5 properties a prepared publication carries. */
export interface PublishHeadProperties {
  /** Response Topic (property 0x08); omitted when empty. */
  responseTopic?: string;
  /** Correlation Data (property 0x09); omitted when empty. */
  correlationData?: Uint8Array;
}

/** Largest remaining length MQTT can express (four bytes of variable byte integer). */
export const MAX_REMAINING_LENGTH = 268_435_455;

const PUBLISH_QOS0 = 0x30;
const RESPONSE_TOPIC = 0x08;
const CORRELATION_DATA = 0x09;
const encoder = new TextEncoder();

function varIntBytes(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}

function writeVarInt(out: Uint8Array, at: number, n: number): number {
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out[at++] = byte;
  } while (n > 0);
  return at;
}

function writeField(out: Uint8Array, at: number, bytes: Uint8Array): number {
  out[at] = bytes.length >> 8;
  out[at + 1] = bytes.length & 0xff;
  out.set(bytes, at + 2);
  return at + 2 + bytes.length;
}

/**
 * Encodes the head of a QoS 0 PUBLISH of `payloadLength` bytes to `topic`: everything before the
 * payload. `protocolVersion` 4 (MQTT 3.1.1) carries no properties. Throws a RangeError for a
 * topic or property over 65 535 bytes or a packet over {@link MAX_REMAINING_LENGTH}.
 */
export function encodePublishHead(
  topic: string,
  payloadLength: number,
  options: { protocolVersion: 4 | 5; properties?: PublishHeadProperties },
): Uint8Array {
  const topicBytes = encoder.encode(topic);
  const props = options.protocolVersion === 5 ? options.properties ?? {} : {};
  const responseTopic = props.responseTopic ? encoder.encode(props.responseTopic) : undefined;
  const correlation = props.correlationData?.length ? props.correlationData : undefined;
  for (const [name, field] of [["topic", topicBytes], ["Response Topic", responseTopic]] as const) {
    if (field && field.length > 0xffff) {
      throw new RangeError(
        `Cannot encode PUBLISH: ${name} of ${field.length} bytes exceeds 65535; shorten it`,
      );
    }
  }
  if (correlation && correlation.length > 0xffff) {
    throw new RangeError(
      `Cannot encode PUBLISH: Correlation Data of ${correlation.length} bytes exceeds 65535`,
    );
  }
  const propsLength = (responseTopic ? 3 + responseTopic.length : 0) +
    (correlation ? 3 + correlation.length : 0);
  const propsField = options.protocolVersion === 5 ? varIntBytes(propsLength) + propsLength : 0;
  const remaining = 2 + topicBytes.length + propsField + payloadLength;
  if (remaining > MAX_REMAINING_LENGTH) {
    throw new RangeError(
      `Cannot encode PUBLISH: remaining length ${remaining} exceeds ${MAX_REMAINING_LENGTH}`,
    );
  }
  const out = new Uint8Array(1 + varIntBytes(remaining) + remaining - payloadLength);
  out[0] = PUBLISH_QOS0;
  let at = writeVarInt(out, 1, remaining);
  at = writeField(out, at, topicBytes);
  if (options.protocolVersion === 5) {
    at = writeVarInt(out, at, propsLength);
    if (responseTopic) {
      out[at++] = RESPONSE_TOPIC;
      at = writeField(out, at, responseTopic);
    }
    if (correlation) {
      out[at++] = CORRELATION_DATA;
      at = writeField(out, at, correlation);
    }
  }
  return out;
}
