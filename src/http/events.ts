/**
 * `GET /api/events`: server-sent events for the dashboard. One hub per server samples what is
 * live (the open transfers every {@link TRANSFERS_EVERY_MS}, the rollouts every
 * {@link ROLLOUTS_EVERY_MS}, see `live.ts`) only while someone listens, and sends each
 * subscriber an event when its content changed, so a quiet fleet costs no bandwidth:
 *
 * - `hello` once: `{ senderId, access }` (`read` or `admin`, what the page's token may do);
 * - `transfers`: {@link LiveTransfers}; `rollouts`: `{ rollouts: LiveRollout[] }`;
 * - a comment line every {@link HEARTBEAT_MS}, so proxies keep the connection and the page sees
 *   a dead server.
 *
 * At most {@link MAX_EVENT_SUBSCRIBERS} listen at once (one more gets 503); a subscriber that
 * stops reading is dropped once {@link MAX_QUEUED_EVENTS} events wait for it; every stream ends
 * when the server stops (`HttpContext.stopping`).
 * @module
 */

import { Hono } from "hono";
import type { HttpContext } from "./context.ts";
import { accessOf, bearerToken, requireAccess } from "./auth.ts";
import { httpError } from "./errors.ts";
import { liveRollouts, liveTransfers } from "./live.ts";

/** Most event streams served at once; the next one is refused with 503. */
export const MAX_EVENT_SUBSCRIBERS = 32;
/** How often the open transfers are sampled while someone listens. */
export const TRANSFERS_EVERY_MS = 500;
/** How often the rollouts are read from the store while someone listens. */
export const ROLLOUTS_EVERY_MS = 1000;
/** Longest silence on a stream: a comment line is sent after this long. */
export const HEARTBEAT_MS = 15_000;
/** Events that may wait for a subscriber that does not read before it is dropped. */
export const MAX_QUEUED_EVENTS = 64;
/** What a browser waits before it reconnects a broken stream (the `retry:` field). */
export const RECONNECT_MS = 2000;

/** Timing of the hub; the constants above by default, shorter in tests. */
export interface EventTiming {
  transfersEveryMs: number;
  rolloutsEveryMs: number;
  heartbeatMs: number;
}

const DEFAULT_TIMING: EventTiming = {
  transfersEveryMs: TRANSFERS_EVERY_MS,
  rolloutsEveryMs: ROLLOUTS_EVERY_MS,
  heartbeatMs: HEARTBEAT_MS,
};

const UTF8 = new TextEncoder();

/** One listening stream. */
interface Subscriber {
  controller: ReadableStreamDefaultController<Uint8Array>;
  /** Last payload sent per event name, so unchanged content is not sent again. */
  sent: Map<string, string>;
  lastWriteAt: number;
}

/** Samples the live state while anyone listens and fans it out; see the module doc. */
class EventHub {
  readonly #subscribers = new Set<Subscriber>();
  /** Latest payload per event name. */
  readonly #latest = new Map<string, string>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #lastRolloutsAt = -Infinity;
  #readingRollouts = false;
  #rolloutsFailed = false;

  constructor(readonly ctx: HttpContext, readonly timing: EventTiming) {}

  get size(): number {
    return this.#subscribers.size;
  }

  /**
   * Opens a stream for a subscriber whose token grants `access`; it ends when the client goes
   * away (the server cancels the body), when it falls behind, or when the server stops.
   */
  open(access: string): ReadableStream<Uint8Array> {
    let subscriber: Subscriber | undefined;
    const end = () => this.#drop(subscriber);
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        const s: Subscriber = { controller, sent: new Map(), lastWriteAt: Date.now() };
        subscriber = s;
        this.#subscribers.add(s);
        this.#write(s, `retry: ${RECONNECT_MS}\n\n`);
        this.#send(s, "hello", JSON.stringify({ senderId: this.ctx.senderId, access }));
        for (const [event, data] of this.#latest) this.#send(s, event, data);
        if (this.ctx.stopping?.aborted) end();
        this.#start();
      },
      cancel: end,
    }, { highWaterMark: MAX_QUEUED_EVENTS });
  }

  #start(): void {
    if (this.#timer !== undefined || this.#subscribers.size === 0) return;
    this.#timer = setInterval(() => this.#tick(), this.timing.transfersEveryMs);
    this.#tick();
  }

  #drop(s: Subscriber | undefined): void {
    if (s === undefined || !this.#subscribers.delete(s)) return;
    try {
      s.controller.close();
    } catch { /* the reader went away first */ }
    if (this.#subscribers.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      // Whoever comes next gets fresh state, not what was live when the last one left.
      this.#latest.clear();
      this.#lastRolloutsAt = -Infinity;
    }
  }

  #tick(): void {
    const now = Date.now();
    if (this.ctx.sender) {
      this.#publish("transfers", JSON.stringify(liveTransfers(this.ctx.sender.openTransfers())));
    }
    if (now - this.#lastRolloutsAt >= this.timing.rolloutsEveryMs && !this.#readingRollouts) {
      this.#lastRolloutsAt = now;
      this.#readingRollouts = true;
      liveRollouts(this.ctx.rollouts)
        .then((rollouts) => {
          this.#rolloutsFailed = false;
          if (this.#subscribers.size > 0) this.#publish("rollouts", JSON.stringify({ rollouts }));
        })
        .catch((err) => {
          // Logged once per run of failures: a broken store must not flood the log twice a second.
          if (!this.#rolloutsFailed) this.ctx.log.warn(`events cannot read the rollouts: ${err}`);
          this.#rolloutsFailed = true;
        })
        .finally(() => this.#readingRollouts = false);
    }
    for (const s of this.#subscribers) {
      if (now - s.lastWriteAt >= this.timing.heartbeatMs) this.#write(s, ": heartbeat\n\n");
    }
  }

  /** Makes `data` the latest `event` and sends it to every subscriber that has not seen it. */
  #publish(event: string, data: string): void {
    this.#latest.set(event, data);
    for (const s of this.#subscribers) this.#send(s, event, data);
  }

  #send(s: Subscriber, event: string, data: string): void {
    if (s.sent.get(event) === data) return;
    s.sent.set(event, data);
    // JSON.stringify never emits a raw newline, so one `data:` line holds the whole payload.
    this.#write(s, `event: ${event}\ndata: ${data}\n\n`);
  }

  #write(s: Subscriber, text: string): void {
    if ((s.controller.desiredSize ?? 0) <= 0) {
      // The reader is MAX_QUEUED_EVENTS events behind: it is gone or too slow to be worth it.
      this.#drop(s);
      return;
    }
    try {
      s.controller.enqueue(UTF8.encode(text));
      s.lastWriteAt = Date.now();
    } catch {
      this.#drop(s);
    }
  }

  /** Ends every stream (the server stops). */
  closeAll(): void {
    for (const s of [...this.#subscribers]) this.#drop(s);
  }
}

/**
 * The `GET /api/events` route (any valid token; `?token=` since EventSource cannot send
 * headers). `timing` shortens the intervals in tests.
 */
export function eventRoutes(ctx: HttpContext, timing: Partial<EventTiming> = {}): Hono {
  const hub = new EventHub(ctx, { ...DEFAULT_TIMING, ...timing });
  ctx.stopping?.addEventListener("abort", () => hub.closeAll(), { once: true });
  const app = new Hono();
  app.get("/api/events", requireAccess(ctx.config, "read", { queryToken: true }), (c) => {
    if (hub.size >= MAX_EVENT_SUBSCRIBERS) {
      return httpError(
        c,
        503,
        "TOO_MANY_SUBSCRIBERS",
        `Already ${MAX_EVENT_SUBSCRIBERS} event streams are open (MAX_EVENT_SUBSCRIBERS); close a dashboard tab or try again later`,
      );
    }
    const access = accessOf(
      ctx.config,
      bearerToken(c.req.header("authorization"), c.req.query("token")),
    );
    return new Response(hub.open(access ?? "read"), {
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
        "x-accel-buffering": "no",
      },
    });
  });
  return app;
}
