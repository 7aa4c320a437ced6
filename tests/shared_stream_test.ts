/**
 * One-to-many delivery (docs/protocol.md §11): the pacing rule of a {@link SharedStream} on its
 * own, then several simulated devices against the real sender, a real KV catalog and a real
 * Mosquitto: joining at once and late, dropping a shared chunk, receiving a corrupt one, on
 * MQTT 3.1.1, and unable to hear the image topic at all. Every device must verify the image.
 * @module
 */

import { MAX_SHARED_LAPSES, sharedImageTopic } from "../src/protocol/mod.ts";
import {
  DEFAULT_SHARED_SETTINGS,
  SharedStream,
  type SharedStreamsInit,
  type StreamMember,
} from "../src/sender/shared_stream.ts";
import type { TransferImage } from "../src/sender/transfer.ts";
import { Receiver, type ReceiverOptions, type ReceiverResult } from "../src/sim/receiver.ts";
import { connectMqtt } from "../src/transport/mqtt_client.ts";
import type { Transport } from "../src/transport/types.ts";
import { assert, assertEquals } from "./_assert.ts";
import type { RunningMosquitto } from "../src/broker/mod.ts";
import { mosquittoTest } from "./_broker.ts";
import { type TestSender, until, withTestSender } from "./_sender_harness.ts";
import { otaMetrics } from "../src/metrics/mod.ts";
import { rolloutStore } from "../src/rollout/store.ts";

/** The value of an unlabelled series in a Prometheus text scrape. */
function scraped(text: string, name: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  assert(line !== undefined, `${name} is not in the scrape`);
  return Number(line.slice(name.length + 1));
}

const KiB = 1024;
/** 256 chunks of 1 KiB, window 16: the stream's pacing matters over 16 windows. */
const IMAGE_BYTES = 256 * KiB;
const CHUNK = 1024;
const WINDOW = 16;
const CHUNKS = IMAGE_BYTES / CHUNK;

// ---- the pacing rule alone (§11.2) ----

function fakeImage(chunks: number, chunkSize: number): TransferImage {
  return {
    sha256: new Uint8Array(32),
    shaHex: "ab".repeat(32),
    name: "x.bin",
    product: "p",
    version: "1",
    kind: "file",
    bytes: new Uint8Array(chunks * chunkSize),
    crc: () => 0,
    signature: new Uint8Array(0),
  };
}

class FakeMember implements StreamMember {
  acked = 0;
  readonly seen: number[] = [];
  ended = false;
  streamChunk(index: number): void {
    this.seen.push(index);
  }
  streamEnded(): void {
    this.ended = true;
  }
}

function streamInit(published: string[], quorum: number): SharedStreamsInit {
  return {
    prefix: "ota",
    settings: { ...DEFAULT_SHARED_SETTINGS, enabled: true, gatherMs: 0, quorum },
    dataQos: 0,
    now: () => 0,
    send: (topic) => published.push(topic),
    mayPublish: () => true,
    stats: { streams: 0, sharedChunks: 0, sharedBytes: 0 },
    log: () => {},
  };
}

Deno.test("SharedStream publishes chunk i only once a quorum acknowledged chunk i - window", async () => {
  const published: string[] = [];
  const stream = new SharedStream(
    5,
    fakeImage(20, 256),
    256,
    4,
    streamInit(published, 0.5),
    () => {},
  );
  const members = [new FakeMember(), new FakeMember(), new FakeMember(), new FakeMember()];
  const links = members.map((m) => stream.join(m));
  await new Promise((r) => setTimeout(r, 5)); // the gathering of 0 ms ends
  assertEquals(stream.state, "STREAMING");
  // Nothing acknowledged: chunks 0..3 (one window) go out, chunk 4 needs ACKs past chunk 0.
  assertEquals(stream.position, 4);
  assertEquals(published, Array(4).fill(sharedImageTopic("ota", "ab".repeat(32), 5)));
  assertEquals(members[0].seen, [0, 1, 2, 3]);
  // One member of four is not a quorum of 0.5 (2 of 4).
  members[0].acked = 3;
  links[0].progressed(0);
  assertEquals(stream.position, 4);
  // Two members are: the window slides up to the slower one's ACK (nextIndex 2: chunks 4, 5).
  members[1].acked = 2;
  links[1].progressed(0);
  assertEquals(stream.position, 6);
  // A member that leaves no longer counts: 3 members, a quorum of 2 again.
  members[0].acked = 20;
  links[0].progressed(0);
  members[1].acked = 20;
  links[1].progressed(0);
  assertEquals(stream.position, 20);
  assertEquals(stream.state, "ENDED");
  assert(members.every((m) => m.ended), "every member is told the stream ended");
});

Deno.test("SharedStream ends and publishes nothing more when its last member leaves", async () => {
  const published: string[] = [];
  let ended = 0;
  const stream = new SharedStream(1, fakeImage(8, 256), 256, 2, streamInit(published, 1), () => {
    ended++;
  });
  const link = stream.join(new FakeMember());
  link.leave();
  await new Promise((r) => setTimeout(r, 5));
  assertEquals(stream.state, "ENDED");
  assertEquals(ended, 1);
  assertEquals(published.length, 0);
});

Deno.test("a stream member leaves after MAX_SHARED_LAPSES lapses and may then send every chunk", () => {
  const stream = new SharedStream(1, fakeImage(8, 256), 256, 2, streamInit([], 1), () => {});
  stream.join(new FakeMember()); // keeps the stream open
  const link = stream.join(new FakeMember());
  assertEquals(link.limit(), 0);
  for (let i = 1; i < MAX_SHARED_LAPSES; i++) assertEquals(link.lapse(), false);
  assertEquals(link.lapse(), true);
  assertEquals(link.limit(), 8);
  assertEquals(stream.members, 1);
  stream.close();
});

Deno.test("SharedStream's kept quorum count matches a recount over random joins, ACKs and leaves", async () => {
  // A seeded generator: a failure replays the same sequence.
  let seed = 0x2545F491;
  const rand = (n: number) => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  for (let round = 0; round < 40; round++) {
    const chunks = 30 + rand(40);
    const window = 1 + rand(6);
    const quorum = [0.3, 0.5, 0.9, 1][rand(4)];
    const stream = new SharedStream(
      1,
      fakeImage(chunks, 16),
      16,
      window,
      streamInit([], quorum),
      () => {},
    );
    const live = new Map<FakeMember, ReturnType<SharedStream["join"]>>();
    const join = (acked: number) => {
      const m = new FakeMember();
      m.acked = acked;
      live.set(m, stream.join(m));
    };
    for (let i = 0, n = 1 + rand(6); i < n; i++) join(0);
    await new Promise((r) => setTimeout(r, 5)); // the gathering of 0 ms ends
    // The position the §11.2 rule allows, recounted over every member from scratch.
    const expected = (from: number) => {
      let next = from;
      while (next < chunks) {
        const need = Math.max(1, Math.ceil(quorum * live.size));
        const have = [...live.keys()].filter((m) => m.acked > next - window).length;
        if (have < need) break;
        next++;
      }
      return next;
    };
    let position = expected(0);
    assertEquals(stream.position, position, `round ${round}: after the gathering`);
    for (let step = 0; stream.state === "STREAMING" && step < 400; step++) {
      const op = rand(10);
      const members = [...live.keys()];
      if (op === 0 || members.length === 0) {
        // A late joiner starts anywhere up to the stream's position (§11.3); a join does not
        // pump, so the position waits for the next ACK, leave or resume.
        join(rand(stream.position + 1));
        assertEquals(stream.position, position, `round ${round} step ${step}: join`);
        continue;
      } else if (op === 1 && members.length > 1) {
        const m = members[rand(members.length)];
        const link = live.get(m)!;
        live.delete(m);
        link.leave();
      } else {
        // A device acknowledges up to what the stream (or its own unicast) could have sent.
        const m = members[rand(members.length)];
        m.acked = Math.min(chunks, m.acked + rand(window + 1));
        live.get(m)!.progressed(0);
      }
      position = expected(position);
      if (position >= chunks) {
        assertEquals(stream.state, "ENDED", `round ${round} step ${step}`);
        break;
      }
      assertEquals(stream.position, position, `round ${round} step ${step}`);
    }
    stream.close();
  }
});

// ---- devices against the real sender and broker ----

/** The sender with streams on: a short gathering, the quorum of every device unless given. */
function sharedSender(shared: Record<string, number> = {}) {
  return {
    size: IMAGE_BYTES,
    sender: {
      shared: { enabled: true, gatherMs: 300, quorum: 1, ...shared },
      timing: { ackTimeoutMs: 300, statusTimeoutMs: 3000, minResendTimeoutMs: 300 },
    },
  };
}

function device(
  h: TestSender,
  deviceId: string,
  options: Partial<ReceiverOptions> & { protocolVersion?: 4 | 5; hideImageTopic?: boolean } = {},
): Receiver {
  const { protocolVersion, hideImageTopic, ...rest } = options;
  return new Receiver({
    deviceId,
    connect: async () => {
      const t = await connectMqtt({
        url: h.url,
        clientId: deviceId,
        protocolVersion: protocolVersion ?? 5,
      });
      return hideImageTopic ? withoutImageTopic(t) : t;
    },
    prefix: "ota",
    product: "blink",
    wantedVersion: "latest",
    chunkSize: CHUNK,
    window: WINDOW,
    idleTimeoutMs: 3000,
    shared: true,
    ...rest,
  });
}

/** A connection on which nothing under `ota/img/` ever arrives (a broker ACL that hides it). */
function withoutImageTopic(t: Transport): Transport {
  return {
    protocolVersion: t.protocolVersion,
    publish: (topic, payload, o) => t.publish(topic, payload, o),
    subscribe: (topics, qos) => t.subscribe(topics, qos),
    unsubscribe: (topics) => t.unsubscribe?.(topics) ?? Promise.resolve(),
    onMessage: (handler) =>
      t.onMessage((m) => m.topic.startsWith("ota/img/") ? undefined : handler(m)),
    close: () => t.close(),
  };
}

function assertVerified(r: ReceiverResult, h: TestSender): void {
  assertEquals(r.status, "VERIFIED", `${r.deviceId}: ${r.detail}`);
  assertEquals(r.sha256, h.sha256, r.deviceId);
  assertEquals(r.bytesWritten, IMAGE_BYTES, r.deviceId);
}

mosquittoTest(
  "devices asking at once share one stream: each chunk crosses the broker once and every device verifies",
  async (b) => {
    // A longer gathering and the protocol's resend floor: on a loaded machine a late REQUEST or a
    // spurious resend timeout would send a few chunks by unicast, which is allowed (§11.2).
    const options = sharedSender({ gatherMs: 1000 });
    options.sender.timing = { ackTimeoutMs: 2000, statusTimeoutMs: 3000, minResendTimeoutMs: 1000 };
    await withTestSender(b.url, options, async (h) => {
      const devices = ["sh-a", "sh-b", "sh-c", "sh-d"].map((id) => device(h, id));
      const results = await Promise.all(devices.map((d) => d.run()));
      for (const r of results) {
        assertVerified(r, h);
        assert(
          r.sharedWritten > CHUNKS / 2,
          `${r.deviceId} wrote ${r.sharedWritten} shared chunks`,
        );
      }
      const s = h.sender.stats;
      assertEquals(s.streams, 1);
      assertEquals(s.sharedChunks, CHUNKS, "each chunk crossed the broker once on the stream");
      assertEquals(s.sharedBytes, IMAGE_BYTES);
      // Unicast would have sent 4 images; the stream leaves less than one to unicast.
      assert(s.chunksSent < CHUNKS, `${s.chunksSent} chunks went by unicast`);
      assertEquals(s.repairBytes, s.chunksSent * CHUNK);
      await until("four VERIFIED records", () => h.records.length === 4, 5000);
      assert(h.records.every((r) => r.outcome === "VERIFIED"));
    });
  },
);

mosquittoTest(
  "a device that drops a shared chunk is repaired by unicast from its ACK and verifies",
  async (b) => {
    await withTestSender(b.url, sharedSender(), async (h) => {
      const results = await Promise.all([
        device(h, "drop-a").run(),
        device(h, "drop-b", { faults: { dropChunk: 40 } }).run(),
        device(h, "drop-c").run(),
      ]);
      for (const r of results) assertVerified(r, h);
      const lossy = results[1];
      assertEquals(lossy.dropped, 1);
      assert(lossy.sharedWritten < CHUNKS, `the lossy device wrote ${lossy.sharedWritten} shared`);
      const s = h.sender.stats;
      assertEquals(s.streams, 1);
      assert(s.repairBytes >= CHUNK, `repaired ${s.repairBytes} bytes`);
      assert(s.repairBytes < IMAGE_BYTES, `repaired ${s.repairBytes} bytes, not the whole image`);
      assert(
        results[0].sharedWritten > CHUNKS / 2,
        `drop-a wrote ${results[0].sharedWritten} shared`,
      );
    });
  },
);

mosquittoTest(
  "a corrupt shared chunk is NACKed, repaired by unicast, and the image verifies",
  async (b) => {
    await withTestSender(b.url, sharedSender(), async (h) => {
      const [clean, hit] = await Promise.all([
        device(h, "crc-a").run(),
        device(h, "crc-b", { faults: { corruptChunk: 7 } }).run(),
      ]);
      assertVerified(clean, h);
      assertVerified(hit, h);
      assertEquals(hit.crcErrors, 1);
      assert(hit.nacks >= 1, `nacks ${hit.nacks}`);
      assert(h.sender.stats.repairBytes >= CHUNK, `repaired ${h.sender.stats.repairBytes}`);
      // The metrics surface reports the stream as the sender counted it.
      const text = await otaMetrics({
        sender: h.sender,
        catalog: h.catalog,
        rollouts: rolloutStore(h.catalog),
        log: { info: () => {}, warn: () => {} },
      }).scrape();
      assertEquals(scraped(text, "ota_shared_streams_total"), h.sender.stats.streams);
      assert(h.sender.stats.streams >= 1, "no stream was opened");
      assertEquals(scraped(text, "ota_shared_chunks_total"), h.sender.stats.sharedChunks);
      assertEquals(scraped(text, "ota_shared_payload_bytes_total"), h.sender.stats.sharedBytes);
      assertEquals(scraped(text, "ota_repair_payload_bytes_total"), h.sender.stats.repairBytes);
    });
  },
);

mosquittoTest(
  "a device joining a running stream gets the chunks it missed by unicast, then follows the stream",
  async (b) => {
    // 128 KiB/s: the 256 KiB stream runs 2 s, so the late device joins halfway.
    await withTestSender(b.url, sharedSender({ bytesPerSecond: 128 * KiB }), async (h) => {
      const early = [device(h, "early-a").run(), device(h, "early-b").run()];
      await until("the stream to pass chunk 64", () => h.sender.stats.sharedChunks >= 64, 10000);
      const late = await device(h, "late").run();
      const [a, bb] = await Promise.all(early);
      for (const r of [a, bb, late]) assertVerified(r, h);
      const s = h.sender.stats;
      assertEquals(s.streams, 1, "the late device joined the running stream");
      assert(late.sharedWritten > 0, "the late device wrote chunks from the stream");
      assert(late.sharedWritten < CHUNKS, `late wrote ${late.sharedWritten} shared`);
      assert(
        s.repairBytes >= 64 * CHUNK,
        `the late device's start went by unicast: ${s.repairBytes}`,
      );
      assertEquals(s.sharedChunks, CHUNKS);
    });
  },
);

mosquittoTest(
  "a device on MQTT 3.1.1 is served by unicast while MQTT 5 devices share the stream",
  async (b) => {
    await withTestSender(b.url, sharedSender(), async (h) => {
      const [v5, v311] = await Promise.all([
        device(h, "v5").run(),
        device(h, "v311", { protocolVersion: 4 }).run(),
      ]);
      assertVerified(v5, h);
      assertVerified(v311, h);
      assert(v5.sharedWritten > CHUNKS / 2, `v5 wrote ${v5.sharedWritten} shared`);
      assertEquals(v311.sharedReceived, 0, "the 3.1.1 device never joined a stream");
      assert(h.sender.stats.chunksSent >= CHUNKS, "the 3.1.1 device got all its chunks by unicast");
    });
  },
);

mosquittoTest(
  "a device that never hears the image topic leaves the stream after its lapses and finishes by unicast",
  async (b) => {
    await withTestSender(b.url, sharedSender({ quorum: 0.5 }), async (h) => {
      const [hears, deaf] = await Promise.all([
        device(h, "hears").run(),
        device(h, "deaf", { hideImageTopic: true }).run(),
      ]);
      assertVerified(hears, h);
      assertVerified(deaf, h);
      assertEquals(deaf.sharedReceived, 0);
      assert(hears.sharedWritten > CHUNKS / 2, "the deaf device never held the other back");
      assert(h.sender.stats.repairBytes >= IMAGE_BYTES, `repaired ${h.sender.stats.repairBytes}`);
    });
  },
);

// ---- the firmware core (host build) in a stream with simulated devices ----

const ROOT = new URL("..", import.meta.url).pathname;
const BUILD = `${ROOT}firmware/build-host`;

/** Brings ota-receiver-host up to date (incremental: quick when nothing changed). */
async function buildHostReceiver(): Promise<void> {
  const build = await new Deno.Command("cmake", {
    args: ["--build", BUILD, "--target", "ota-receiver-host", "-j2"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(build.success, `cmake --build failed: ${new TextDecoder().decode(build.stderr)}`);
}

/** Runs ota-receiver-host with --shared to its end; returns its final JSON report. */
async function runHostReceiver(
  b: RunningMosquitto,
  deviceId: string,
): Promise<{ status: string; sha256: string; bytesWritten: number; sharedWritten: number }> {
  const dir = await Deno.makeTempDir({ prefix: "ota-shared-host-" });
  try {
    const out = await new Deno.Command(`${BUILD}/ota-receiver-host`, {
      args: [
        ...["--host", "127.0.0.1", "--port", String(b.port), "--device-id", deviceId],
        ...["--product", "blink", "--prefix", "ota", "--want", "latest", "--current", "1.0.0"],
        ...["--chunk", String(CHUNK), "--window", String(WINDOW), "--dir", dir],
        ...["--timeout-s", "60", "--shared"],
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const last = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "";
    assert(last.startsWith("{"), `no report: ${new TextDecoder().decode(out.stderr)}`);
    return JSON.parse(last);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

mosquittoTest(
  "the firmware core (host build) shares a stream with simulated devices and verifies",
  async (b) => {
    await buildHostReceiver();
    // A longer gathering: both must ask before the stream's first chunk, process start included.
    await withTestSender(b.url, sharedSender({ gatherMs: 1500 }), async (h) => {
      const [fw, sim] = await Promise.all([
        runHostReceiver(b, "fw-shared"),
        device(h, "sim-shared").run(),
      ]);
      assertEquals(fw.status, "VERIFIED");
      assertEquals(fw.sha256, h.sha256);
      assertEquals(fw.bytesWritten, IMAGE_BYTES);
      assert(fw.sharedWritten > CHUNKS / 2, `the firmware wrote ${fw.sharedWritten} shared chunks`);
      assertVerified(sim, h);
      assertEquals(h.sender.stats.streams, 1, "one stream served both receivers");
    });
  },
);
