/**
 * `GET /api/events` over real HTTP (Deno.serve on a free loopback port) on a real in-memory KV:
 * what a subscriber receives (hello with its access, live transfers with progress and rate,
 * rollouts with the failure rate against the abort threshold, heartbeats), the bound on
 * subscribers, a client that leaves, and the end of every stream when the server stops. The
 * sender's open transfers are a stub here; the browser test drives a real one.
 * @module
 */

import { Catalog, makeSampleImage } from "../src/catalog/mod.ts";
import { createRollout } from "../src/ops/rollouts.ts";
import { rolloutStore } from "../src/rollout/store.ts";
import { inventoryStore } from "../src/inventory/store.ts";
import type { Sender, TransferProgress } from "../src/sender/mod.ts";
import type { HttpContext } from "../src/http/context.ts";
import { eventRoutes, MAX_EVENT_SUBSCRIBERS } from "../src/http/events.ts";
import { startHttp } from "../src/http/server.ts";
import { DEFAULT_CONFIG } from "../src/service/config.ts";
import { liveTransfers, MAX_LIVE_TRANSFERS } from "../src/http/live.ts";
import { assert, assertEquals } from "./_assert.ts";

const ADMIN = "events-admin-token-0123456789";
const READ = "events-read-token-0123456789";

/** One server-sent event, or a comment line (`event` empty). */
interface Sse {
  event: string;
  data: string;
  comment?: string;
}

/** Reads the events of a streamed response one by one. */
function sseReader(res: Response): { next(): Promise<Sse | null>; cancel(): Promise<void> } {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  return {
    async next() {
      while (!buffer.includes("\n\n")) {
        const { value, done } = await reader.read();
        if (done) return null;
        buffer += value;
      }
      const end = buffer.indexOf("\n\n");
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const out: Sse = { event: "", data: "" };
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) out.comment = line.slice(1).trim();
        else if (line.startsWith("event: ")) out.event = line.slice(7);
        else if (line.startsWith("data: ")) out.data = line.slice(6);
        else if (line.startsWith("retry: ")) out.event = "retry";
      }
      return out;
    },
    cancel: () => reader.cancel(),
  };
}

/** The next event named `name` (skipping others), or a failure after `ms`. */
async function nextEvent(r: ReturnType<typeof sseReader>, name: string, ms = 5000): Promise<Sse> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const e = await r.next();
    if (e === null) throw new Error(`The stream ended before a "${name}" event`);
    if (e.event === name || (name === "heartbeat" && e.comment === "heartbeat")) return e;
  }
  throw new Error(`No "${name}" event within ${ms} ms`);
}

function progress(over: Partial<TransferProgress> = {}): TransferProgress {
  return {
    transferId: 1,
    deviceId: "dev-1",
    state: "SENDING",
    acked: 48,
    chunks: 64,
    product: "blink",
    version: "1.1.0",
    size: 64 * 1024,
    bytesHeld: 48 * 1024,
    bytesAcknowledged: 48 * 1024,
    rateSeconds: 2,
    ...over,
  };
}

/** A server with the events route on an in-memory catalog; `open` is what the stub sender has. */
async function withEvents(
  fn: (s: { url: string; catalog: Catalog; open: TransferProgress[] }) => Promise<void>,
  timing = { transfersEveryMs: 20, rolloutsEveryMs: 20, heartbeatMs: 100 },
): Promise<void> {
  const catalog = await Catalog.open();
  const open: TransferProgress[] = [];
  const ctx: HttpContext = {
    catalog,
    rollouts: rolloutStore(catalog),
    inventory: inventoryStore(catalog),
    sender: { openTransfers: () => open } as unknown as Sender,
    senderId: "events-sender",
    config: { ...DEFAULT_CONFIG.http, adminTokens: ADMIN, readTokens: READ },
    log: { info: () => {}, warn: () => {} },
  };
  const app = eventRoutes(ctx, timing);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  try {
    await fn({ url: `http://127.0.0.1:${server.addr.port}`, catalog, open });
  } finally {
    await server.shutdown();
    catalog.close();
  }
}

Deno.test("GET /api/events says hello with the token's access, then sends live transfers with progress and rate", async () => {
  await withEvents(async ({ url, open }) => {
    for (const [token, access] of [[READ, "read"], [ADMIN, "admin"]]) {
      const res = await fetch(`${url}/api/events?token=${token}`);
      assertEquals(res.status, 200);
      assertEquals(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
      const r = sseReader(res);
      assertEquals(JSON.parse((await nextEvent(r, "hello")).data), {
        senderId: "events-sender",
        access,
      });
      await r.cancel();
    }
    const r = sseReader(await fetch(`${url}/api/events?token=${READ}`));
    assertEquals(JSON.parse((await nextEvent(r, "transfers")).data), { open: 0, transfers: [] });
    open.push(progress());
    const live = JSON.parse((await nextEvent(r, "transfers")).data);
    assertEquals(live.open, 1);
    assertEquals(live.transfers[0], {
      transferId: 1,
      deviceId: "dev-1",
      image: "blink@1.1.0",
      state: "SENDING",
      percent: 75,
      progress: "48.0 KiB of 64.0 KiB",
      rate: 24 * 1024,
      rateText: "24.0 KiB/s",
    });
    await r.cancel();
  });
});

Deno.test("GET /api/events sends a heartbeat when nothing changes, and unchanged content only once", async () => {
  await withEvents(async ({ url }) => {
    const r = sseReader(await fetch(`${url}/api/events?token=${READ}`));
    await nextEvent(r, "transfers");
    await nextEvent(r, "rollouts");
    // Nothing changes now: the 20 ms samples send nothing, only heartbeats (every 100 ms) come.
    const seen: string[] = [];
    for (let i = 0; i < 3; i++) {
      const e = await r.next();
      seen.push(e === null ? "end" : e.comment ?? e.event);
    }
    assertEquals(seen, ["heartbeat", "heartbeat", "heartbeat"]);
    await r.cancel();
  });
});

Deno.test("GET /api/events sends rollouts, newest first, with waves and the failure rate against the abort threshold", async () => {
  await withEvents(async ({ url, catalog }) => {
    await catalog.addImage(makeSampleImage({ product: "blink", version: "1.1.0", size: 4096 }));
    const r = sseReader(await fetch(`${url}/api/events?token=${READ}`));
    assertEquals(JSON.parse((await nextEvent(r, "rollouts")).data), { rollouts: [] });
    const record = await createRollout(catalog, {
      image: "blink@1.1.0",
      waves: [10, 100],
      abortFailurePct: 15,
      abortMinDevices: 3,
    });
    const { rollouts } = JSON.parse((await nextEvent(r, "rollouts")).data);
    assertEquals(rollouts.length, 1);
    assertEquals(rollouts[0].summary.id, record.id);
    assertEquals(rollouts[0].summary.waves.map((w: { pct: number }) => w.pct), [10, 100]);
    assertEquals(
      [rollouts[0].abortFailurePct, rollouts[0].abortMinDevices, rollouts[0].failurePct],
      [15, 3, null],
    );
    // A second rollout (another product) comes first: the newest rollouts lead the list.
    await catalog.addImage(makeSampleImage({ product: "lamp", version: "2.0.0", size: 4096 }));
    const second = await createRollout(catalog, { image: "lamp@2.0.0", waves: [100] });
    const after = JSON.parse((await nextEvent(r, "rollouts")).data).rollouts;
    assertEquals(after.map((x: { summary: { id: string } }) => x.summary.id), [
      second.id,
      record.id,
    ]);
    await r.cancel();
  });
});

Deno.test("GET /api/events without a valid token is 401 and opens no stream", async () => {
  await withEvents(async ({ url }) => {
    for (const query of ["", "?token=", `?token=${READ}x`]) {
      const res = await fetch(`${url}/api/events${query}`);
      assertEquals(res.status, 401);
      assertEquals((await res.json()).error.code, "UNAUTHORIZED");
    }
  });
});

Deno.test("GET /api/events refuses a subscriber past MAX_EVENT_SUBSCRIBERS with 503 and takes one again when a client leaves", async () => {
  await withEvents(async ({ url }) => {
    const readers = [];
    for (let i = 0; i < MAX_EVENT_SUBSCRIBERS; i++) {
      const r = sseReader(await fetch(`${url}/api/events?token=${READ}`));
      await nextEvent(r, "hello");
      readers.push(r);
    }
    const refused = await fetch(`${url}/api/events?token=${READ}`);
    assertEquals(refused.status, 503);
    const body = await refused.json();
    assertEquals(body.error.code, "TOO_MANY_SUBSCRIBERS");
    assert(body.error.message.includes(String(MAX_EVENT_SUBSCRIBERS)), body.error.message);

    await readers.pop()!.cancel();
    // The server notices the client left when it cancels the body; poll until a slot is free.
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      const res = await fetch(`${url}/api/events?token=${READ}`);
      status = res.status;
      if (status === 200) readers.push(sseReader(res));
      else {
        await res.body?.cancel();
        await new Promise((ok) => setTimeout(ok, 20));
      }
    }
    assertEquals(status, 200, "a slot stayed taken after its client left");
    for (const r of readers) await r.cancel();
  });
});

Deno.test("stopping the HTTP server ends every event stream and does not wait for them", async () => {
  const catalog = await Catalog.open();
  try {
    const http = await startHttp({
      catalog,
      rollouts: rolloutStore(catalog),
      inventory: inventoryStore(catalog),
      senderId: "events-sender",
      config: { ...DEFAULT_CONFIG.http, listen: "127.0.0.1:0", adminTokens: ADMIN, readTokens: "" },
      log: { info: () => {}, warn: () => {} },
    });
    const r = sseReader(await fetch(`${http.url}/api/events?token=${ADMIN}`));
    await nextEvent(r, "hello");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, fail) => {
      timer = setTimeout(
        () => fail(new Error("stop() still waits for the stream after 3 s")),
        3000,
      );
    });
    await Promise.race([http.stop(), late]).finally(() => clearTimeout(timer));
    let ended = false;
    for (let i = 0; i < 10 && !ended; i++) ended = (await r.next()) === null;
    assert(ended, "the stream is still open after the server stopped");
  } finally {
    catalog.close();
  }
});

Deno.test("liveTransfers() lists at most MAX_LIVE_TRANSFERS by id, counts them all, and has no rate before an ACK", () => {
  const many = Array.from(
    { length: MAX_LIVE_TRANSFERS + 5 },
    (_, i) => progress({ transferId: MAX_LIVE_TRANSFERS + 5 - i, deviceId: `d-${i}` }),
  );
  const live = liveTransfers(many);
  assertEquals(live.open, MAX_LIVE_TRANSFERS + 5);
  assertEquals(live.transfers.length, MAX_LIVE_TRANSFERS);
  assertEquals(live.transfers[0].transferId, 1);
  const fresh = liveTransfers([progress({ bytesHeld: 0, bytesAcknowledged: 0, rateSeconds: 0 })]);
  assertEquals([fresh.transfers[0].rate, fresh.transfers[0].rateText], [null, "-"]);
  assertEquals(fresh.transfers[0].percent, 0);
});
