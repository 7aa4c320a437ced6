/**
 * The sender's batched log (src/service/log_writer.ts): lines keep their order across batches,
 * many lines cost few writes, a reader that falls behind makes lines over the bound dropped and
 * reported (info before warnings) without the queue growing, a flush writes everything, and the
 * real `deno task sender` process still shows its log on stdout line by line.
 * @module
 */

import {
  LOG_BATCH_MS,
  type LogSink,
  LogWriter,
  MAX_INFO_QUEUE_CHARS,
  MAX_LOG_QUEUE_CHARS,
} from "../src/service/log_writer.ts";
import { consoleLog } from "../src/service/run.ts";
import { encodeRequest } from "../src/protocol/mod.ts";
import { connectMqtt } from "../src/transport/mqtt_client.ts";
import { assert, assertEquals } from "./_assert.ts";
import { mosquittoTest } from "./_broker.ts";
import { request } from "./_fixtures.ts";
import { until } from "./_sender_harness.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const decoder = new TextDecoder();

/**
 * A sink that records its writes; `held` makes every async write wait for `release()` (a reader
 * that does not read), `partial` makes it take at most that many bytes per write.
 */
function recordingSink(options: { held?: boolean; partial?: number } = {}) {
  const writes: string[] = [];
  let syncWrites = 0;
  let gate = Promise.withResolvers<void>();
  if (!options.held) gate.resolve();
  const take = (p: Uint8Array) => {
    const n = Math.min(p.length, options.partial ?? p.length);
    writes.push(decoder.decode(p.subarray(0, n)));
    return n;
  };
  const sink: LogSink = {
    async write(p) {
      await gate.promise;
      return take(p);
    },
    writeSync(p) {
      syncWrites++;
      return take(p);
    },
  };
  return {
    sink,
    writes,
    text: () => writes.join(""),
    syncWrites: () => syncWrites,
    release() {
      gate.resolve();
    },
    hold() {
      gate = Promise.withResolvers<void>();
    },
  };
}

const turn = () => new Promise((r) => setTimeout(r, 0));
const lines = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => `line ${from + i}`);

Deno.test("lines keep their order across batches, partial writes included", async () => {
  const s = recordingSink({ partial: 7 });
  const w = new LogWriter(s.sink, { batchMs: 1 });
  const expected: string[] = [];
  for (let batch = 0; batch < 20; batch++) {
    const some = lines(batch * 50, batch * 50 + 50);
    for (const [i, line] of some.entries()) (i % 3 === 0 ? w.warn : w.info).call(w, line);
    expected.push(...some);
    await new Promise((r) => setTimeout(r, 2));
  }
  await w.flush();
  assertEquals(s.text(), expected.map((l) => `${l}\n`).join(""));
});

Deno.test("10 000 lines logged over 100 event-loop turns take far fewer writes than lines", async () => {
  const s = recordingSink();
  const w = new LogWriter(s.sink);
  const start = performance.now();
  for (let t = 0; t < 100; t++) {
    for (const line of lines(t * 100, t * 100 + 100)) w.info(line);
    await turn();
  }
  const elapsedMs = performance.now() - start;
  await w.flush();
  assertEquals(s.text(), lines(0, 10_000).map((l) => `${l}\n`).join(""));
  // One write per LOG_BATCH_MS at most (and the flush's), whatever the turns cost.
  const most = Math.ceil(elapsedMs / LOG_BATCH_MS) + 2;
  assert(s.writes.length <= most, `${s.writes.length} writes in ${elapsedMs} ms (most ${most})`);
  assert(s.writes.length <= 50, `${s.writes.length} writes for 10 000 lines`);
});

Deno.test("a reader that does not read: lines over the bound are dropped and reported, info first, the queue stays bounded", async () => {
  const s = recordingSink({ held: true });
  const w = new LogWriter(s.sink, { batchMs: 1, now: () => Date.UTC(2026, 10, 30, 12) });
  w.info("first");
  await new Promise((r) => setTimeout(r, 5)); // the first write is in flight, held
  const line = "x".repeat(99); // 100 characters with its newline
  let infos = 0;
  while (w.dropped === 0 && infos <= MAX_LOG_QUEUE_CHARS / 100) {
    w.info(`${infos++}`.padEnd(99, "."));
    assert(w.queuedChars <= MAX_INFO_QUEUE_CHARS, `${w.queuedChars} queued`);
  }
  assertEquals(w.dropped, 1, "the bound dropped nothing");
  const acceptedInfos = infos - 1;
  for (let i = 0; i < 10_000; i++) w.info(line);
  // Warnings still fit: the last quarter of the bound is theirs.
  for (let i = 0; i < 100; i++) w.warn(`warning ${i}`);
  assert(w.queuedChars <= MAX_LOG_QUEUE_CHARS, `${w.queuedChars} queued`);
  // Then warnings are dropped too once the whole bound is used.
  let warnings = 100;
  while (w.queuedChars + 200 < MAX_LOG_QUEUE_CHARS) w.warn(`warning ${warnings++}`);
  for (let i = 0; i < 5000; i++) w.warn("y".repeat(299));
  assert(w.queuedChars <= MAX_LOG_QUEUE_CHARS, `${w.queuedChars} queued`);
  s.release();
  await w.flush();
  const out = s.text().split("\n");
  assertEquals(out.pop(), "");
  assertEquals(out[0], "first");
  for (let i = 0; i < acceptedInfos; i++) assert(out[1 + i].startsWith(`${i}.`), out[1 + i]);
  assertEquals(
    out[acceptedInfos + 1],
    `12:00:00.000 log: ${
      1 + 10_000
    } lines dropped: stdout was read slower than the sender logged (queue bound ${MAX_LOG_QUEUE_CHARS} characters)`,
  );
  assertEquals(out[acceptedInfos + 2], "warning 0");
  const kept = out.slice(acceptedInfos + 2, -1);
  assertEquals(kept, Array.from({ length: warnings }, (_, i) => `warning ${i}`));
  assertEquals(
    out.at(-1),
    `12:00:00.000 log: 5000 lines dropped (5000 warnings): stdout was read slower than the sender logged (queue bound ${MAX_LOG_QUEUE_CHARS} characters)`,
  );
  // Once the reader keeps up, lines are queued again.
  w.info("after");
  await w.flush();
  assert(s.text().endsWith("characters)\nafter\n"), s.text().slice(-200));
});

Deno.test("flush writes everything queued and the write in flight; flushSync writes at once", async () => {
  const s = recordingSink({ held: true });
  const w = new LogWriter(s.sink, { batchMs: 1 });
  w.info("a");
  await new Promise((r) => setTimeout(r, 5));
  w.warn("b");
  w.info("c");
  const flushed = w.flush();
  s.release();
  await flushed;
  assertEquals(s.text(), "a\nb\nc\n");
  assertEquals(w.queuedChars, 0);
  // An exit that cannot wait: nothing is written until flushSync, which writes it all at once.
  w.info("d");
  w.warn("e");
  assertEquals(s.syncWrites(), 0);
  w.flushSync();
  assertEquals(s.syncWrites(), 1);
  assertEquals(s.text(), "a\nb\nc\nd\ne\n");
  await turn(); // nothing left scheduled (the sanitizer checks timers)
});

Deno.test("consoleLog time-stamps and escapes each line and writes through the batched writer", async () => {
  const s = recordingSink();
  const log = consoleLog(new LogWriter(s.sink));
  for (let i = 0; i < 1000; i++) log.info(`status dev-${i}\n12:00:00.000 forged \x1b[2J`);
  assertEquals(s.writes.length, 0);
  await log.flush?.();
  assertEquals(s.writes.length, 1);
  const out = s.text().split("\n");
  assertEquals(out.length, 1001);
  assert(
    /^\d\d:\d\d:\d\d\.\d{3} status dev-0\\n12:00:00\.000 forged \\e\[2J$/.test(out[0]),
    out[0],
  );
});

mosquittoTest(
  "the sender process (deno task sender's command) shows its log on stdout line by line while it runs, and all of it at shutdown",
  async (b) => {
    const dir = await Deno.makeTempDir({ prefix: "log_writer_test_" });
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}src/service/main.ts`, "--kv", `${dir}/ota.kv`, "--broker", b.url],
      env: { NO_COLOR: "1", OTA_SENDER_ID: "s-log" },
      stdout: "piped",
      stderr: "null",
      stdin: "null",
    }).spawn();
    let seen = "";
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const read = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        seen += value;
      }
    })().catch(() => {});
    const device = await connectMqtt({ url: b.url, clientId: "d-log" });
    try {
      await until("the sender to start", () => seen.includes("Ctrl-C stops"), 30_000, 20);
      for (const id of ["d-log-a", "d-log-b", "d-log-c"]) {
        await device.publish(
          `ota/dev/${id}/req`,
          encodeRequest(request({ deviceId: id })),
          { qos: 1, responseTopic: `ota/dev/${id}/data` },
        );
        // Each line is on stdout while the sender runs, whole, before the next REQUEST.
        await until(`the log line of ${id}`, () => seen.includes(`"${id}"`), 10_000, 20);
        assert(seen.endsWith("\n"), seen);
        const line = seen.split("\n").find((l) => l.includes(`"${id}"`))!;
        assert(/^\d\d:\d\d:\d\d\.\d{3} /.test(line), line);
      }
      child.kill("SIGTERM");
      assertEquals((await child.status).code, 0);
      await read;
      const all = seen.split("\n");
      assertEquals(all.pop(), "");
      const at = (text: string) => all.findIndex((l) => l.includes(text));
      assert(at("Ctrl-C stops") < at('"d-log-a"'), seen);
      assert(at('"d-log-a"') < at('"d-log-b"') && at('"d-log-b"') < at('"d-log-c"'), seen);
      assert(at('"d-log-c"') < at("Shutting down"), seen);
    } finally {
      await device.close().catch(() => {});
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await child.status;
      await reader.cancel().catch(() => {});
      await read;
      await Deno.remove(dir, { recursive: true });
    }
  },
);
