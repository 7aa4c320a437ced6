/**
 * Open transfer records of a sender killed under a random id are ended by the senders still
 * running (issue 12 review): a sender beats in KV, and one whose beat is older than the bound has
 * its old open records ended as SENDER_LOST, once, while a live sender's stay open. The killed
 * sender is the real `deno task sender` process (src/service/main.ts) on a real Mosquitto and a
 * real KV file, stopped with SIGKILL in the middle of a transfer.
 * @module
 */
import { assert, assertEquals } from "./_assert.ts";
import { mosquittoTest } from "./_broker.ts";
import { until } from "./_sender_harness.ts";
import { request } from "./_fixtures.ts";
import {
  Catalog,
  makeSampleImage,
  OPEN_OUTCOME,
  SENDER_LOST_OUTCOME,
  type TransferRecord,
} from "../src/catalog/mod.ts";
import { History } from "../src/catalog/history.ts";
import { releaseImage } from "../src/ops/rollouts.ts";
import { encodeRequest } from "../src/protocol/mod.ts";
import { connectMqtt } from "../src/transport/mqtt_client.ts";
import { startSenderLiveness } from "../src/service/sender_liveness.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const QUIET = { info: () => {}, warn: () => {} };

function openRecord(senderId: string, transferId: number, startedAt: Date): TransferRecord {
  return {
    transferId,
    deviceId: `dev-${transferId}`,
    sha256: "ab".repeat(32),
    product: "blink",
    version: "1.1.0",
    bytes: 0,
    startOffset: 0,
    seconds: 0,
    resends: 0,
    outcome: OPEN_OUTCOME,
    ok: false,
    startedAt: startedAt.toISOString(),
    endedAt: startedAt.toISOString(),
    senderId,
  };
}

/** A `deno task sender` process with a random sender id; resolves with that id once it serves. */
async function startSender(url: string, kvPath: string) {
  const env: Record<string, string> = { ...Deno.env.toObject(), NO_COLOR: "1" };
  delete env.OTA_SENDER_ID;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}src/service/main.ts`, "--kv", kvPath, "--broker", url],
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const output: string[] = [];
  const keep = (stream: ReadableStream<Uint8Array>) =>
    stream.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (text) => void output.push(text) }),
    ).catch(() => {});
  const drained = Promise.all([keep(child.stdout), keep(child.stderr)]);
  const kill = async () => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone already */ }
    await child.status;
    await drained;
  };
  try {
    await until("the sender to start", () => output.join("").includes("Ctrl-C stops"), 30_000, 50);
  } catch (err) {
    await kill();
    throw new Error(`${(err as Error).message}: ${output.join("")}`);
  }
  const senderId = /mqtt-ota sender (\S+) serving/.exec(output.join(""))![1];
  return { senderId, kill };
}

mosquittoTest(
  "the open transfer of a sender SIGKILLed under a random id is ended as SENDER_LOST by a running sender; a live sender's stays open",
  async (broker) => {
    const dir = await Deno.makeTempDir({ prefix: "ota-sender-lost-" });
    const kvPath = `${dir}/ota.kv`;
    const catalog = await Catalog.open(kvPath);
    const device = await connectMqtt({ url: broker.url, clientId: "lost-dev" });
    const stops: Array<() => Promise<void>> = [];
    try {
      await releaseImage(
        catalog,
        await catalog.addImage(
          makeSampleImage({ product: "blink", version: "1.1.0", size: 256 * 1024 }),
        ),
      );
      const killed = await startSender(broker.url, kvPath);
      stops.push(killed.kill);
      assert(killed.senderId.startsWith("s-"), `a random sender id: ${killed.senderId}`);
      // The device asks and never acknowledges a CHUNK: the transfer stays open.
      await device.publish(
        "ota/dev/lost-1/req",
        encodeRequest(request({ deviceId: "lost-1", window: 1 })),
        { qos: 1, responseTopic: "ota/dev/lost-1/data" },
      );
      await until(
        "the killed sender's open record",
        async () => (await catalog.listOpenTransfers(killed.senderId)).length === 1,
        15_000,
      );
      assert(
        (await catalog.kv.get(["sender_alive", killed.senderId])).value !== null,
        "the sender beats while it runs",
      );
      await killed.kill();

      // A live sender (beating) with a transfer opened long ago: it must stay open.
      const live = await startSenderLiveness(catalog, "s-live", QUIET, { beatMs: 200 });
      stops.push(live.stop);
      await catalog.recordOpenTransfer(openRecord("s-live", 5, new Date(Date.now() - 600_000)));

      const ended: TransferRecord[] = [];
      const sweeper = await startSenderLiveness(catalog, "s-sweeper", {
        info: () => {},
        warn: (line) => void ended.push({ detail: line } as TransferRecord),
      }, { beatMs: 200, lostAfterMs: 1500, sweepMs: 300 });
      stops.push(sweeper.stop);
      await until(
        "the killed sender's transfer to end",
        async () => (await catalog.listOpenTransfers(killed.senderId)).length === 0,
        10_000,
      );
      const lost = (await catalog.listTransfers(10)).filter((r) => r.senderId === killed.senderId);
      assertEquals(lost.map((r) => [r.deviceId, r.outcome, r.ok]), [
        ["lost-1", SENDER_LOST_OUTCOME, false],
      ]);
      assert(lost[0].detail?.includes(killed.senderId), lost[0].detail);
      // The sweep logs its line after the commit that ended the record.
      await until(
        "the sweep to say so",
        () => ended.some((e) => e.detail?.includes("as SENDER_LOST")),
        5_000,
      );
      await new Promise((r) => setTimeout(r, 1000)); // a few more sweeps
      assertEquals((await catalog.listOpenTransfers("s-live")).map((r) => r.transferId), [5]);
    } finally {
      for (const stop of stops.reverse()) await stop();
      await device.close();
      catalog.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("two senders ending the same lost record write one end record", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ota-sender-lost-" });
  // One handle: the two histories race on their commits, not on SQLite's file lock.
  const kv = await Deno.openKv(`${dir}/ota.kv`);
  try {
    const ha = new History(kv, { limit: 1000 });
    const hb = new History(kv, { limit: 1000 });
    const old = new Date(Date.now() - 120_000);
    for (let id = 1; id <= 20; id++) await ha.recordOpenTransfer(openRecord("s-gone", id, old));
    const [x, y] = await Promise.all([
      ha.endLost("s-a", { lostAfterMs: 60_000 }),
      hb.endLost("s-b", { lostAfterMs: 60_000 }),
    ]);
    assertEquals(x.length + y.length, 20);
    const ends = await ha.listTransfers(100);
    assertEquals(ends.length, 20);
    assertEquals(new Set(ends.map((r) => r.transferId)).size, 20);
    assertEquals(await ha.listOpenTransfers(), []);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a young open record, or one of a sender that beats, is not ended", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const h = new History(kv, { limit: 1000 });
    await h.recordOpenTransfer(openRecord("s-gone", 1, new Date(Date.now() - 5_000)));
    await h.recordOpenTransfer(openRecord("s-beating", 2, new Date(Date.now() - 120_000)));
    await h.recordOpenTransfer(openRecord("s-self", 3, new Date(Date.now() - 120_000)));
    await h.beat("s-beating", new Date(), 60_000);
    assertEquals(await h.endLost("s-self", { lostAfterMs: 60_000 }), []);
    const later = Date.now() + 120_000; // the beat is stale by then, and record 1 old
    const ended = await h.endLost("s-self", { lostAfterMs: 60_000, now: later });
    assertEquals(ended.map((r) => r.transferId).sort(), [1, 2]);
  } finally {
    kv.close();
  }
});

Deno.test("a lost sender's records are found behind more open records of live senders than one sweep reads", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const h = new History(kv, { limit: 1000 });
    const old = new Date(Date.now() - 120_000);
    await h.beat("s-a-busy", new Date(), 60_000);
    for (let id = 1; id <= 1100; id++) await h.recordOpenTransfer(openRecord("s-a-busy", id, old));
    await h.recordOpenTransfer(openRecord("s-z-gone", 1, old));
    const ended = await h.endLost("s-self", { lostAfterMs: 60_000 });
    assertEquals(ended.map((r) => [r.senderId, r.transferId]), [["s-z-gone", 1]]);
    assertEquals((await h.listOpenTransfers("s-a-busy")).length, 1100);
  } finally {
    kv.close();
  }
});
