/**
 * A hostile device against a real sender over a real Mosquitto (no ACLs: the sender's own checks
 * are what holds) and a real Deno KV file (issue 10 §2, §3): forged ACK, NACK and STATUS for
 * another device's transfer change nothing recorded; a forged early VERIFIED on the victim's own
 * ack topic is recorded as what it is; one device's request/abort cycles cannot push another's
 * records out; shutdown is bounded with the broker down; a killed sender's open transfers stay
 * visible.
 * @module
 */
import { releaseImage } from "../src/ops/rollouts.ts";
import type { RunningMosquitto } from "../src/broker/mod.ts";
import { Catalog, makeSampleImage, type TransferRecord } from "../src/catalog/mod.ts";
import {
  decodeManifest,
  encodeAck,
  encodeRequest,
  encodeStatus,
  fromHex,
  type Manifest,
  MessageType,
  NackReason,
  peekType,
  StatusCode,
} from "../src/protocol/mod.ts";
import { DEFAULT_CONFIG, type SenderConfig } from "../src/service/config.ts";
import { runSender } from "../src/service/run.ts";
import type { SenderOptions } from "../src/sender/sender.ts";
import { Receiver } from "../src/sim/receiver.ts";
import { connectMqtt, MAX_PENDING_PUBLISHES } from "../src/transport/mqtt_client.ts";
import type { InboundMessage, Transport } from "../src/transport/types.ts";
import { runOta } from "../src/cli/ota.ts";
import { assert, assertEquals } from "./_assert.ts";
import { mosquittoTest } from "./_broker.ts";
import { type TestSender, until, withTestSender } from "./_sender_harness.ts";
import { request } from "./_fixtures.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** A sender over `b` with a catalog in a fresh KV file holding one 64 KiB sample image. */
type World = TestSender;

function withWorld(
  b: RunningMosquitto,
  options: Partial<SenderOptions>,
  fn: (w: World) => Promise<void>,
): Promise<void> {
  return withTestSender(b.url, { size: 64 * 1024, seed: 5, senderId: "s1", sender: options }, fn);
}

/** A raw MQTT client subscribed to everything under `ota/dev/#` (no ACL stops it). */
async function snoop(url: string, clientId: string) {
  const transport: Transport = await connectMqtt({ url, clientId });
  const inbox: InboundMessage[] = [];
  transport.onMessage((m) => inbox.push(m));
  await transport.subscribe(["ota/dev/#"], 1);
  const manifestOf = async (deviceId: string): Promise<Manifest> => {
    const end = Date.now() + 5000;
    for (;;) {
      const m = inbox.find((m) =>
        m.topic === `ota/dev/${deviceId}/data` && peekType(m.payload) === MessageType.MANIFEST
      );
      if (m) return decodeManifest(m.payload);
      if (Date.now() > end) throw new Error(`No MANIFEST for ${deviceId} within 5 s`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  return { transport, inbox, manifestOf };
}

function device(w: World, deviceId: string, options: { ackDelayMs?: number } = {}) {
  return new Receiver({
    deviceId,
    connect: () => connectMqtt({ url: w.url, clientId: deviceId }),
    prefix: "ota",
    product: "blink",
    wantedVersion: "latest",
    idleTimeoutMs: 3000,
    window: 4,
    chunkSize: 1024,
    ...options,
  }).run();
}

mosquittoTest(
  "forged ACK, NACK and STATUS naming another device's transfer id change nothing recorded over a real broker",
  async (b) => {
    await withWorld(b, {}, async (w) => {
      const evil = await snoop(w.url, "evil");
      try {
        const victim = device(w, "victim", { ackDelayMs: 5 });
        const { transferId } = await evil.manifestOf("victim");
        const fake = (payload: Uint8Array) =>
          evil.transport.publish("ota/dev/evil/ack/s1", payload, { qos: 1 });
        for (let i = 0; i < 20; i++) {
          await fake(encodeAck({ transferId, nextIndex: 64, nack: 0 }));
          await fake(encodeAck({ transferId, nextIndex: 0, nack: NackReason.CRC_MISMATCH }));
          const status = StatusCode.HASH_MISMATCH;
          await fake(
            encodeStatus({
              transferId,
              status,
              sha256: fromHex(w.sha256),
              version: "",
              detail: "",
            }),
          );
        }
        const result = await victim;
        assertEquals(result.status, "VERIFIED", result.detail);
        await until("the victim's record", () => w.records.length > 0);
        assertEquals(w.records.map((r) => [r.deviceId, r.outcome]), [["victim", "VERIFIED"]]);
        await until("the KV record", async () => (await w.catalog.listTransfers()).length > 0);
        const stored = await w.catalog.listTransfers();
        assertEquals(stored.map((r) => [r.deviceId, r.outcome]), [["victim", "VERIFIED"]]);
        assertEquals(stored[0].resends, 0, "the forged NACKs made nothing be resent");
      } finally {
        await evil.transport.close();
      }
    });
  },
);

mosquittoTest(
  "a forged STATUS VERIFIED on the victim's ack topic before delivery is recorded as VERIFIED_BEFORE_DELIVERY",
  async (b) => {
    await withWorld(b, {}, async (w) => {
      const evil = await snoop(w.url, "evil");
      const victim = await connectMqtt({ url: w.url, clientId: "victim" });
      try {
        await victim.subscribe(["ota/dev/victim/data"], 1);
        await victim.publish("ota/dev/victim/req", encodeRequest(request({ deviceId: "victim" })), {
          qos: 1,
          responseTopic: "ota/dev/victim/data",
        });
        const { transferId, ackTopic } = await evil.manifestOf("victim");
        // Without an ACL anyone can publish on the victim's ack topic: the sender must not take it
        // as a delivery while chunks are unacknowledged.
        await evil.transport.publish(
          ackTopic,
          encodeStatus({
            transferId,
            status: StatusCode.VERIFIED,
            sha256: fromHex(w.sha256),
            version: "2.0.0",
            detail: "",
          }),
          { qos: 1 },
        );
        await until("the record", () => w.records.length > 0);
        assertEquals(w.records.map((r) => [r.outcome, r.ok]), [[
          "VERIFIED_BEFORE_DELIVERY",
          false,
        ]]);
        assertEquals(w.sender.stats.transfersOk, 0);
      } finally {
        await evil.transport.close();
        await victim.close();
      }
    });
  },
);

mosquittoTest(
  "1050 request/abort cycles of one device do not push another device's records out of the KV history",
  async (b) => {
    await withWorld(b, { requestRate: { burst: 5000, refillMs: 1 } }, async (w) => {
      assertEquals((await device(w, "victim")).status, "VERIFIED");
      await until("the victim's record", async () => (await w.catalog.listTransfers()).length > 0);
      const flood = await snoop(w.url, "flood");
      try {
        const seen = new Set<number>();
        for (let i = 0; i < 1050; i++) {
          await flood.transport.publish(
            "ota/dev/flood/req",
            encodeRequest(request({ deviceId: "flood" })),
            { qos: 1, responseTopic: "ota/dev/flood/data" },
          );
          let manifest: Manifest | undefined;
          await until(
            "the MANIFEST",
            () => {
              const m = flood.inbox.find((m) =>
                m.topic === "ota/dev/flood/data" && peekType(m.payload) === MessageType.MANIFEST &&
                !seen.has(decodeManifest(m.payload).transferId)
              );
              if (m) manifest = decodeManifest(m.payload);
              return m !== undefined;
            },
            10000,
            1,
          );
          seen.add(manifest!.transferId);
          flood.inbox.length = 0;
          await flood.transport.publish(
            manifest!.ackTopic,
            encodeStatus({
              transferId: manifest!.transferId,
              status: StatusCode.ABORTED,
              sha256: fromHex(w.sha256),
              version: "",
              detail: `cycle ${i}`,
            }),
            { qos: 1 },
          );
        }
        await until("1050 aborted transfers", () => w.records.length >= 1051, 60000);
        await new Promise((r) => setTimeout(r, 500));
        const stored = await w.catalog.listTransfers(5000);
        assertEquals(stored.filter((r) => r.deviceId === "victim").map((r) => r.outcome), [
          "VERIFIED",
        ]);
        assert(stored.filter((r) => r.deviceId === "flood").length <= 20, "flood kept to its own");
      } finally {
        await flood.transport.close();
      }
    });
  },
);

mosquittoTest(
  "the sender stops within a few seconds with the broker down and transfers open",
  async (b) => {
    const dir = await Deno.makeTempDir({ prefix: "ota-hostile-stop-" });
    try {
      const config: SenderConfig = structuredClone(DEFAULT_CONFIG);
      config.broker.url = b.url;
      config.kvPath = `${dir}/ota.kv`;
      config.senderId = "s-stop";
      const seed = await Catalog.open(config.kvPath);
      await releaseImage(
        seed,
        await seed.addImage(
          makeSampleImage({ product: "blink", version: "2.0.0", size: 64 * 1024 }),
        ),
      );
      seed.close();
      const running = await runSender(config, { info: () => {}, warn: () => {} });
      const dev = await snoop(b.url, "d1");
      for (const id of ["d1", "d2", "d3"]) {
        await dev.transport.publish(`ota/dev/${id}/req`, encodeRequest(request({ deviceId: id })), {
          qos: 1,
          responseTopic: `ota/dev/${id}/data`,
        });
      }
      await until("three open transfers", () => running.sender.openTransfers().length === 3);
      await dev.transport.close();
      await b.stop(); // the broker is gone: the QoS 1 aborts can never be acknowledged
      const started = Date.now();
      const stopped = await Promise.race([
        running.stop().then(() => true),
        new Promise<false>((r) => setTimeout(() => r(false), 8000)),
      ]);
      const ms = Date.now() - started;
      assert(stopped, "stop() returned");
      assert(ms < 5000, `stop() took ${ms} ms`);
      const after = await Catalog.open(config.kvPath);
      try {
        assertEquals(await after.listOpenTransfers(), [], "no transfer is left open");
        const ends = (await after.listTransfers()).map((r) => r.outcome);
        assertEquals(ends, ["TRANSFER_ABORTED", "TRANSFER_ABORTED", "TRANSFER_ABORTED"]);
      } finally {
        after.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
  { sanitizeOps: false, sanitizeResources: false },
);

mosquittoTest(
  "a sender killed with SIGKILL leaves its open transfers visible in ota transfers, INTERRUPTED after its restart",
  async (b) => {
    const dir = await Deno.makeTempDir({ prefix: "ota-hostile-kill-" });
    const kvPath = `${dir}/ota.kv`;
    const seed = await Catalog.open(kvPath);
    await releaseImage(
      seed,
      await seed.addImage(makeSampleImage({ product: "blink", version: "2.0.0", size: 64 * 1024 })),
    );
    seed.close();
    const spawn = () =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", `${ROOT}src/service/main.ts`, "--kv", kvPath, "--broker", b.url],
        env: { OTA_SENDER_ID: "s-killed", NO_COLOR: "1" },
        stdout: "piped",
        stderr: "null",
        stdin: "null",
      }).spawn();
    const ready = async (child: Deno.ChildProcess) => {
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let seen = "";
      while (!seen.includes("Ctrl-C stops")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`The sender exited: ${seen}`);
        seen += value;
      }
      return reader;
    };
    const ota = async (args: string[]) => {
      const out: string[] = [];
      const sink = (to: string[]) => ({
        write: (p: Uint8Array) => (to.push(new TextDecoder().decode(p)), p.length),
      });
      await runOta(args, { stdout: sink(out), stderr: sink([]), env: {} });
      return out.join("");
    };
    let child = spawn();
    let reader = await ready(child);
    const dev = await snoop(b.url, "d1");
    try {
      await dev.transport.publish("ota/dev/d1/req", encodeRequest(request({ deviceId: "d1" })), {
        qos: 1,
        responseTopic: "ota/dev/d1/data",
      });
      await dev.manifestOf("d1");
      await until(
        "the open record",
        async () => (await ota(["transfers", "--kv", kvPath])).includes("OPEN"),
      );
      child.kill("SIGKILL");
      await child.status;
      await reader.cancel().catch(() => {});
      const listed = await ota(["transfers", "--kv", kvPath]);
      assert(/^-\s+d1\s+blink@2\.0\.0\s+OPEN\b.*s-killed$/m.test(listed), listed);
      child = spawn();
      reader = await ready(child);
      const json = JSON.parse(await ota(["transfers", "--kv", kvPath, "--json"]));
      assertEquals(json.map((r: TransferRecord) => [r.deviceId, r.outcome]), [[
        "d1",
        "INTERRUPTED",
      ]]);
    } finally {
      child.kill("SIGKILL");
      await child.status;
      await reader.cancel().catch(() => {});
      await dev.transport.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

mosquittoTest(
  "QoS 1 publications beyond MAX_PENDING_PUBLISHES are refused at once instead of queueing without bound",
  async (b) => {
    const t = await connectMqtt({ url: b.url, clientId: "queue-bound", reconnectMs: 100 });
    await b.stop();
    const outcomes: Array<Promise<string>> = [];
    for (let i = 0; i < MAX_PENDING_PUBLISHES + 100; i++) {
      outcomes.push(
        t.publish("ota/dev/x/error", new Uint8Array(1), { qos: 1 }).then(
          () => "sent",
          (err) => String(err),
        ),
      );
    }
    const settled = await Promise.race([
      Promise.all(outcomes.slice(-50)),
      new Promise<null>((r) => setTimeout(() => r(null), 3000)),
    ]);
    assert(settled !== null, "the publications over the bound were refused at once");
    assert(settled.every((o) => o.includes("already wait for the broker")), settled[0]);
    await t.close();
  },
  { sanitizeOps: false, sanitizeResources: false },
);
