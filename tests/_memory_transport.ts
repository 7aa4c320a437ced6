/**
 * An in-memory MQTT-like broker for unit tests of the window, resend and timeout logic: topic
 * wildcards (+, #, $share), Response Topic and Correlation Data, and a hook that can drop or
 * duplicate a message. Integration tests use a real Mosquitto instead.
 * @module
 */
import type { InboundMessage, PublishOptions, Transport } from "../src/transport/types.ts";

/** Decides the fate of each delivery: "deliver", "drop" or "duplicate". */
export type Fault = (
  topic: string,
  payload: Uint8Array,
  seq: number,
) => "deliver" | "drop" | "duplicate";

/** Matches an MQTT topic filter (with + and #, $share/group/ stripped). */
export function topicMatches(filter: string, topic: string): boolean {
  if (filter.startsWith("$share/")) filter = filter.split("/").slice(2).join("/");
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** The broker: clients, their subscriptions, and a log of every publication. */
export class MemoryBroker {
  readonly published: Array<{ topic: string; payload: Uint8Array; options: PublishOptions }> = [];
  fault: Fault = () => "deliver";
  private seq = 0;
  private readonly clients = new Set<MemoryClient>();

  /** A new client connection. */
  connect(protocolVersion: 4 | 5 = 5): MemoryClient {
    const c = new MemoryClient(this, protocolVersion);
    this.clients.add(c);
    return c;
  }

  /** @internal */
  route(topic: string, payload: Uint8Array, options: PublishOptions, from: MemoryClient): void {
    this.published.push({ topic, payload, options });
    const fate = this.fault(topic, payload, this.seq++);
    if (fate === "drop") return;
    const message: InboundMessage = { topic, payload: payload.slice() };
    if (from.protocolVersion === 5) {
      message.responseTopic = options.responseTopic;
      message.correlationData = options.correlationData;
    }
    for (const c of this.clients) {
      if (c.matches(topic)) {
        c.deliver(message);
        if (fate === "duplicate") c.deliver(message);
      }
    }
  }

  /** @internal */
  remove(c: MemoryClient): void {
    this.clients.delete(c);
  }

  /** Publications on `topic`. */
  on(topic: string): Uint8Array[] {
    return this.published.filter((p) => p.topic === topic).map((p) => p.payload);
  }
}

/** One connection to a {@link MemoryBroker}. Deliveries are asynchronous (a microtask later). */
export class MemoryClient implements Transport {
  private readonly filters: string[] = [];
  private handler: (m: InboundMessage) => void = () => {};
  constructor(private readonly broker: MemoryBroker, readonly protocolVersion: 4 | 5) {}
  publish(topic: string, payload: Uint8Array, options: PublishOptions): Promise<void> {
    this.broker.route(topic, payload, options, this);
    return Promise.resolve();
  }
  subscribe(topics: string[]): Promise<void> {
    this.filters.push(...topics);
    return Promise.resolve();
  }
  onMessage(handler: (m: InboundMessage) => void): void {
    this.handler = handler;
  }
  close(): Promise<void> {
    this.broker.remove(this);
    return Promise.resolve();
  }
  /** @internal */
  matches(topic: string): boolean {
    return this.filters.some((f) => topicMatches(f, topic));
  }
  /** @internal */
  deliver(m: InboundMessage): void {
    queueMicrotask(() => this.handler(m));
  }
}
