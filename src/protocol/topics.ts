/**
 * Topic names of protocol v1 (docs/protocol.md §2) and the Response Topic rule of §2.1. Every
 * topic string in the project is built or parsed here; no other module formats `{p}/dev/...`.
 * @module
 */

import { DEVICE_ID_PATTERN, MAX_STR8_BYTES, SHARED_TOPIC_SHA_HEX } from "./limits.ts";

/** Default topic prefix. */
export const DEFAULT_PREFIX = "ota";

/**
 * The six topics of a device's namespace (protocol §2): `request` (`req`, REQUEST), `data`
 * (MANIFEST, CHUNK, ERROR), `ack` (`ack/{senderId}`, ACK and STATUS), `status` (STATUS), `error`
 * (ERROR) and `offer` (OFFER, which the device subscribes to and the sender only publishes); and
 * `image`, the shared image topic `{p}/img/{sha16}/{streamId}` outside every namespace, which
 * carries only CHUNK (§11).
 */
export type TopicKind = "request" | "data" | "ack" | "status" | "error" | "offer" | "image";

/** The kinds of topic inside a device's namespace (all but the shared `image` topic). */
export type DeviceTopicKind = Exclude<TopicKind, "image">;

/**
 * The shared image topic of protocol §2 and §11: `{p}/img/{sha16}/{streamId}`, `sha16` the first
 * 16 lower-case hex digits of the image's SHA-256, `streamId` in decimal without leading zeros.
 */
export function sharedImageTopic(prefix: string, sha256Hex: string, streamId: number): string {
  return `${prefix}/img/${sha256Hex.slice(0, SHARED_TOPIC_SHA_HEX).toLowerCase()}/${streamId}`;
}

/** The filter `{p}/img/#` that covers every shared image topic (the broker's read grant, §2.2). */
export function sharedImageFilter(prefix: string): string {
  return `${prefix}/img/#`;
}

/** The namespace `{p}/dev/{id}/` of one device, with its trailing slash. */
export function deviceNamespace(prefix: string, deviceId: string): string {
  return `${prefix}/dev/${deviceId}/`;
}

/** The topics of one device under `prefix`; `all` is the `{p}/dev/{id}/#` filter. */
export function deviceTopics(prefix: string, deviceId: string): {
  namespace: string;
  all: string;
  request: string;
  data: string;
  status: string;
  error: string;
  offer: string;
  ack: (senderId: string) => string;
} {
  const ns = deviceNamespace(prefix, deviceId);
  return {
    namespace: ns,
    all: `${ns}#`,
    request: `${ns}req`,
    data: `${ns}data`,
    status: `${ns}status`,
    error: `${ns}error`,
    offer: `${ns}offer`,
    ack: (senderId: string) => `${ns}ack/${senderId}`,
  };
}

/** The subscriptions of a sender instance; `group` makes the shared ones `$share/{group}/...`. */
export function senderSubscriptions(prefix: string, senderId: string, group?: string): {
  requests: string;
  acks: string;
  status: string;
} {
  const share = (t: string) => (group ? `$share/${group}/${t}` : t);
  const any = deviceTopics(prefix, "+");
  return {
    requests: share(any.request),
    acks: any.ack(senderId),
    status: share(any.status),
  };
}

/** A topic of some device's namespace, taken apart. `senderId` is set for `ack` only. */
export interface DeviceTopic {
  kind: DeviceTopicKind;
  deviceId: string;
  senderId?: string;
}

/**
 * Parses `topic` as one of the six topics of protocol §2 under `prefix`, or null when it is
 * none of them (another prefix, an invalid device or sender id, an unknown leaf).
 */
export function parseDeviceTopic(prefix: string, topic: string): DeviceTopic | null {
  const head = `${prefix}/dev/`;
  if (!topic.startsWith(head)) return null;
  const parts = topic.slice(head.length).split("/");
  const deviceId = parts[0];
  if (!DEVICE_ID_PATTERN.test(deviceId)) return null;
  if (parts.length === 2) {
    const leaf = parts[1];
    if (leaf === "req") return { kind: "request", deviceId };
    if (leaf === "data" || leaf === "status" || leaf === "error" || leaf === "offer") {
      return { kind: leaf, deviceId };
    }
    return null;
  }
  if (parts.length === 3 && parts[1] === "ack" && DEVICE_ID_PATTERN.test(parts[2])) {
    return { kind: "ack", deviceId, senderId: parts[2] };
  }
  return null;
}

/** What a topic a sender receives on means. */
export type InboundTopic =
  | { kind: "request"; deviceId: string }
  | { kind: "ack"; deviceId: string; senderId: string }
  | { kind: "status"; deviceId: string };

/** Parses a topic the sender received under `prefix`, or null when it is none of ours. */
export function parseInboundTopic(prefix: string, topic: string): InboundTopic | null {
  const t = parseDeviceTopic(prefix, topic);
  if (t === null) return null;
  if (t.kind === "request" || t.kind === "status") return { kind: t.kind, deviceId: t.deviceId };
  if (t.kind === "ack") return { kind: "ack", deviceId: t.deviceId, senderId: t.senderId! };
  return null;
}

/**
 * Why `topic` cannot be device `deviceId`'s ack topic `{p}/dev/{id}/ack/{senderId}` (protocol
 * §2), or null when it is one. A receiver checks the ack topic a MANIFEST names before it
 * publishes there, so a forged MANIFEST cannot make it write outside its namespace.
 */
export function ackTopicProblem(prefix: string, deviceId: string, topic: string): string | null {
  const t = parseDeviceTopic(prefix, topic);
  if (t === null || t.kind !== "ack" || t.deviceId !== deviceId) {
    return `the ack topic "${topic}" is not "${deviceNamespace(prefix, deviceId)}ack/{senderId}"`;
  }
  return null;
}

/** Checks a prefix (protocol §2); returns a reason when it is unusable. */
export function prefixProblem(prefix: string): string | null {
  if (prefix.length === 0) return "the prefix is empty";
  if (/[+#\0]/.test(prefix)) return `the prefix "${prefix}" contains a wildcard or NUL`;
  if (prefix.endsWith("/") || prefix.startsWith("/")) {
    return `the prefix "${prefix}" starts or ends with "/"`;
  }
  if (prefix.startsWith("$")) return `the prefix "${prefix}" starts with "$"`;
  return null;
}

/**
 * Sender ids a sender MUST NOT take (protocol §2.2): under the username-keyed ACL a client whose
 * username is `devA/ack` may write or read `{p}/dev/devA/ack/{x}`, and these `{x}` are the last
 * levels of topics the sender listens on or devices read (`offer` among them: that client could
 * read the acks of a sender named `offer`).
 */
export const RESERVED_SENDER_IDS: readonly string[] = ["req", "status", "data", "error", "offer"];

/** Why `senderId` cannot name a sender's ack topic (protocol §2, §2.2), or null when it can. */
export function senderIdProblem(senderId: string): string | null {
  if (!DEVICE_ID_PATTERN.test(senderId)) {
    return `the sender id "${senderId}" breaks the id rule [A-Za-z0-9._:-]{1,64}`;
  }
  if (RESERVED_SENDER_IDS.includes(senderId)) {
    return `the sender id "${senderId}" is reserved (${RESERVED_SENDER_IDS.join(", ")})`;
  }
  return null;
}

/**
 * Why the sender must refuse `responseTopic` for device `deviceId` (protocol §2.1), or null
 * when it may publish there. Without this check any device could make the sender flood another
 * device's topics.
 */
export function responseTopicProblem(
  prefix: string,
  deviceId: string,
  responseTopic: string,
): string | null {
  const base = deviceNamespace(prefix, deviceId);
  if (responseTopic.length === 0) return "the request has no Response Topic";
  if (new TextEncoder().encode(responseTopic).length > MAX_STR8_BYTES) {
    return `the Response Topic is longer than ${MAX_STR8_BYTES} bytes`;
  }
  if (/[+#\0]/.test(responseTopic)) {
    return `the Response Topic "${responseTopic}" contains a wildcard or NUL`;
  }
  if (!responseTopic.startsWith(base) || responseTopic.length === base.length) {
    return `the Response Topic "${responseTopic}" is outside the device's namespace "${base}"`;
  }
  const rest = responseTopic.slice(base.length);
  if (rest === "req" || rest === "status" || rest === "ack" || rest.startsWith("ack/")) {
    return `the Response Topic "${responseTopic}" is one the sender listens on`;
  }
  if (rest === "offer") {
    return `the Response Topic "${responseTopic}" is the offer topic, which carries only OFFER`;
  }
  return null;
}
