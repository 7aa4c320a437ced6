/**
 * Topic names of protocol v1 (docs/protocol.md §2) and the Response Topic rule of §2.1. Every
 * topic string in the project is built or parsed here.
 * @module
 */

import { DEVICE_ID_PATTERN, MAX_STR8_BYTES } from "./limits.ts";

/** Default topic prefix. */
export const DEFAULT_PREFIX = "ota";

/** The topics of one device under `prefix`. */
export function deviceTopics(prefix: string, deviceId: string): {
  request: string;
  data: string;
  status: string;
  error: string;
  ack: (senderId: string) => string;
} {
  const base = `${prefix}/dev/${deviceId}`;
  return {
    request: `${base}/req`,
    data: `${base}/data`,
    status: `${base}/status`,
    error: `${base}/error`,
    ack: (senderId: string) => `${base}/ack/${senderId}`,
  };
}

/** The subscriptions of a sender instance; `group` makes the shared ones `$share/{group}/...`. */
export function senderSubscriptions(prefix: string, senderId: string, group?: string): {
  requests: string;
  acks: string;
  status: string;
} {
  const share = (t: string) => (group ? `$share/${group}/${t}` : t);
  return {
    requests: share(`${prefix}/dev/+/req`),
    acks: `${prefix}/dev/+/ack/${senderId}`,
    status: share(`${prefix}/dev/+/status`),
  };
}

/** What a topic a sender receives on means. */
export type InboundTopic =
  | { kind: "request"; deviceId: string }
  | { kind: "ack"; deviceId: string; senderId: string }
  | { kind: "status"; deviceId: string };

/** Parses a topic the sender received under `prefix`, or null when it is none of ours. */
export function parseInboundTopic(prefix: string, topic: string): InboundTopic | null {
  if (!topic.startsWith(`${prefix}/dev/`)) return null;
  const parts = topic.slice(prefix.length + 5).split("/");
  const deviceId = parts[0];
  if (!DEVICE_ID_PATTERN.test(deviceId)) return null;
  if (parts.length === 2 && parts[1] === "req") return { kind: "request", deviceId };
  if (parts.length === 2 && parts[1] === "status") return { kind: "status", deviceId };
  if (parts.length === 3 && parts[1] === "ack") {
    return { kind: "ack", deviceId, senderId: parts[2] };
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
 * Why the sender must refuse `responseTopic` for device `deviceId` (protocol §2.1), or null
 * when it may publish there. Without this check any device could make the sender flood another
 * device's topics.
 */
export function responseTopicProblem(
  prefix: string,
  deviceId: string,
  responseTopic: string,
): string | null {
  const base = `${prefix}/dev/${deviceId}/`;
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
  return null;
}
