/**
 * The transport interface the sender and the simulator are written against: publish with
 * MQTT 5 request-response properties, subscribe, receive. `mqtt_client.ts` implements it over
 * a real broker; tests may implement it in memory.
 * @module
 */

/** A message as the application sees it. */
export interface InboundMessage {
  topic: string;
  payload: Uint8Array;
  /** MQTT 5 Response Topic property, when present. */
  responseTopic?: string;
  /** MQTT 5 Correlation Data property, when present. */
  correlationData?: Uint8Array;
}

/** Options of one publication. */
export interface PublishOptions {
  qos: 0 | 1;
  responseTopic?: string;
  correlationData?: Uint8Array;
}

/**
 * QoS 0 publications to one topic with one set of properties, encoded once
 * ({@link Transport.prepare}): each CHUNK of a transfer goes to the same topic with the same
 * Response Topic and Correlation Data.
 */
export interface PreparedPublish {
  /**
   * Publishes `head` followed by `body` as one message's payload. `done` is called once the
   * connection has taken the bytes (at once, or when its buffer drains); `head` may be reused as
   * soon as this returns, `body` must stay unchanged until `done`.
   */
  publish(head: Uint8Array, body: Uint8Array, done: (err?: Error) => void): void;
}

/** What the sender and simulator need from a broker connection. */
export interface Transport {
  /** The MQTT protocol level in use: 5, or 4 for MQTT 3.1.1. */
  readonly protocolVersion: 4 | 5;
  /** Publishes; resolves when handed to the socket (QoS 0) or acknowledged (QoS 1). */
  publish(topic: string, payload: Uint8Array, options: PublishOptions): Promise<void>;
  /**
   * A QoS 0 publication to `topic` with `options`' properties, encoded once and written many
   * times; optional (transports without it get {@link Transport.publish} calls instead).
   */
  prepare?(topic: string, options: PublishOptions): PreparedPublish;
  /** Subscribes; the subscriptions are restored after every reconnect. */
  subscribe(topics: string[], qos: 0 | 1): Promise<void>;
  /** Ends subscriptions (a device's shared image topic, protocol §11.4); optional. */
  unsubscribe?(topics: string[]): Promise<void>;
  /** Sets the one handler of inbound messages. */
  onMessage(handler: (message: InboundMessage) => void): void;
  /** Closes the connection. */
  close(): Promise<void>;
}
