/**
 * Broker outages as the sender reports them: the loss once, "still unreachable" at growing
 * intervals, "reconnected after N s" when the broker is back; against a real Mosquitto that is
 * stopped and started again on the same port.
 * @module
 */

import assert from "node:assert/strict";
import { startMosquitto } from "../src/broker/mod.ts";
import { DEFAULT_CONFIG, runSender, type SenderConfig } from "../src/service/mod.ts";
import { OutageReporter } from "../src/transport/outage.ts";
import { mosquittoTest } from "./_broker.ts";

Deno.test("OutageReporter reports a loss once, then at growing intervals, then the reconnect", () => {
  const lines: string[] = [];
  const r = new OutageReporter((l) => lines.push(l), {
    reconnectMs: 1000,
    reportSeconds: [10, 30],
  });
  r.connected(0); // up from the start: nothing to say
  for (let t = 0; t <= 95_000; t += 1000) r.lost(t, "connect ECONNREFUSED 127.0.0.1:1883");
  r.connected(95_500);
  assert.deepEqual(lines, [
    "broker connection lost (connect ECONNREFUSED 127.0.0.1:1883); reconnecting every 1.00 s",
    "broker still unreachable after 10 s (connect ECONNREFUSED 127.0.0.1:1883); still trying",
    "broker still unreachable after 30 s (connect ECONNREFUSED 127.0.0.1:1883); still trying",
    "broker still unreachable after 60 s (connect ECONNREFUSED 127.0.0.1:1883); still trying",
    "broker still unreachable after 90 s (connect ECONNREFUSED 127.0.0.1:1883); still trying",
    "broker reconnected after 1 min 36 s",
  ]);
  // A second outage starts its own count.
  r.lost(100_000);
  r.connected(102_000);
  assert.deepEqual(lines.slice(-2), [
    "broker connection lost; reconnecting every 1.00 s",
    "broker reconnected after 2.00 s",
  ]);
});

mosquittoTest(
  "the sender logs a stopped broker once and says when it reconnected",
  async (first) => {
    const port = first.port;
    const kvDir = await Deno.makeTempDir({ prefix: "transport_test_" });
    const config: SenderConfig = structuredClone(DEFAULT_CONFIG);
    Object.assign(config, { senderId: "outage", kvPath: `${kvDir}/ota.kv` });
    Object.assign(config.broker, { url: first.url, reconnectMs: 100 });
    const lines: string[] = [];
    const log = { info: () => {}, warn: (l: string) => lines.push(l) };
    const running = await runSender(config, log);
    let second: Awaited<ReturnType<typeof startMosquitto>> | undefined;
    try {
      await first.stop();
      // ~25 reconnect attempts at 100 ms: once the sender logged each of them.
      await new Promise((r) => setTimeout(r, 2500));
      assert.equal(lines.length, 1, lines.join("\n"));
      assert.match(lines[0], /^broker connection lost.*; reconnecting every 0\.10 s$/);
      second = await startMosquitto({ port });
      const deadline = Date.now() + 10_000;
      while (!lines.some((l) => l.startsWith("broker reconnected")) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const back = lines.find((l) => l.startsWith("broker reconnected"));
      assert.ok(back, lines.join("\n"));
      const seconds = Number(/after (\d+\.\d+) s$/.exec(back)?.[1]);
      assert.ok(seconds >= 2.5 && seconds < 12, back);
      assert.equal(lines.length, 2, lines.join("\n"));
    } finally {
      await running.stop();
      await second?.stop();
      await Deno.remove(kvDir, { recursive: true });
    }
  },
  { sanitizeOps: false, sanitizeResources: false },
);
