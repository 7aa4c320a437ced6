/**
 * A slow link for the benchmark: a TCP proxy on loopback between devices and the broker that
 * delays every byte by `delayMs` each way and caps each direction at `bytesPerSecond`.
 *
 * Each direction is a token bucket (burst `burstBytes`) feeding a delay queue: a piece read
 * from one socket departs when the bucket holds enough tokens and is written to the other
 * socket `delayMs` after it departed. The reader stops reading while more than
 * `queueMs` of departures are waiting, so TCP flow control pushes back on the sender the way
 * a full bottleneck buffer would. Both sockets use TCP_NODELAY.
 * @module
 */
import { MiB } from "../src/format/mod.ts";

/** Options of {@link startSlowProxy}. */
export interface SlowProxyOptions {
  /** Where to forward: the broker's port on 127.0.0.1. */
  targetPort: number;
  /** One-way delay in ms; default 25 (50 ms round trip). */
  delayMs?: number;
  /** Rate cap of each direction; default 1 MiB/s. */
  bytesPerSecond?: number;
  /** Bucket depth; default 4 KiB. */
  burstBytes?: number;
  /** Most departure time queued ahead before the reader pauses; default 100 ms. */
  queueMs?: number;
}

/** A running proxy. */
export interface SlowProxy {
  port: number;
  url: string;
  /** Closes the listener and every proxied connection. */
  close(): void;
}

const PIECE_BYTES = 4096;

/** Starts the proxy on a free loopback port. */
export function startSlowProxy(options: SlowProxyOptions): SlowProxy {
  const delayMs = options.delayMs ?? 25;
  const rate = (options.bytesPerSecond ?? MiB) / 1000; // bytes per ms
  const burst = options.burstBytes ?? 4096;
  const queueMs = options.queueMs ?? 100;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let closed = false;

  function pipe(from: Deno.TcpConn, to: Deno.TcpConn): Promise<void> {
    // Token bucket as a virtual clock: `free` is when the bucket next has room for a byte.
    let free = 0;
    const queue: Array<{ at: number; bytes: Uint8Array }> = [];
    let writing = false;
    let ended = false;
    const writer = async () => {
      writing = true;
      try {
        while (queue.length > 0) {
          const wait = queue[0].at - performance.now();
          if (wait > 0.5) await sleep(wait);
          const { bytes } = queue.shift()!;
          let off = 0;
          while (off < bytes.length) off += await to.write(bytes.subarray(off));
        }
        if (ended) to.closeWrite().catch(() => {});
      } catch {
        try {
          from.close();
        } catch { /* already closed by the reader */ }
      } finally {
        writing = false;
      }
    };
    return (async () => {
      const buf = new Uint8Array(PIECE_BYTES);
      try {
        for (;;) {
          const n = await from.read(buf);
          if (n === null) break;
          const now = performance.now();
          free = Math.max(free, now - burst / rate) + n / rate;
          const departs = Math.max(now, free);
          queue.push({ at: departs + delayMs, bytes: buf.slice(0, n) });
          if (!writing) writer();
          if (departs - now > queueMs) await sleep(departs - now - queueMs);
        }
      } catch { /* connection closed */ }
      ended = true;
      if (!writing) writer();
    })();
  }

  (async () => {
    for await (const client of listener) {
      if (closed) break;
      let upstream: Deno.TcpConn;
      try {
        upstream = await Deno.connect({ hostname: "127.0.0.1", port: options.targetPort });
      } catch {
        client.close();
        continue;
      }
      client.setNoDelay(true);
      upstream.setNoDelay(true);
      conns.add(client);
      conns.add(upstream);
      Promise.all([pipe(client, upstream), pipe(upstream, client)]).finally(() => {
        for (const c of [client, upstream]) {
          conns.delete(c);
          try {
            c.close();
          } catch { /* already closed */ }
        }
      });
    }
  })().catch(() => {});

  const port = (listener.addr as Deno.NetAddr).port;
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    close() {
      closed = true;
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      conns.clear();
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
