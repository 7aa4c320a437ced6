/**
 * Fuzzing that runs every time (issue 10 §5): random and mutated messages through a real
 * Mosquitto while real devices download; no crash, every real download verified, RSS bounded.
 * `deno task test` runs a small budget (OTA_FUZZ_MESSAGES, default 5000); `deno task fuzz-ts`
 * runs 100 000. OTA_FUZZ_SEED replays a run.
 * @module
 */
import { assert, assertEquals } from "./_assert.ts";
import { mosquittoTest } from "./_broker.ts";
import { fuzzSender } from "./_sender_fuzz.ts";

const MESSAGES = Number(Deno.env.get("OTA_FUZZ_MESSAGES") ?? 5000);
const SEED = Number(Deno.env.get("OTA_FUZZ_SEED") ?? 0x5eed);
/** RSS growth allowed over a run: the sender's state is bounded, so growth must level off. */
const MAX_RSS_GROWTH_BYTES = 256 * 1024 * 1024;
const MiB = 1024 * 1024;

mosquittoTest(
  `${MESSAGES} random and mutated messages never crash the sender and every real download verifies`,
  async (b) => {
    const dir = await Deno.makeTempDir({ prefix: "ota-fuzz-" });
    try {
      const r = await fuzzSender({ url: b.url, messages: MESSAGES, seed: SEED, dir });
      console.log(
        `fuzz: ${r.messages} messages (seed ${SEED}) in ${r.seconds.toFixed(1)} s; ` +
          `${r.deviceOutcomes.length} real downloads; RSS ${
            (r.rssBeforeBytes / MiB).toFixed(0)
          } MiB before, ` +
          `${(r.rssAfterBytes / MiB).toFixed(0)} MiB after`,
      );
      assertEquals(r.internalErrors, [], "no handler threw");
      assert(r.deviceOutcomes.length >= 3, `${r.deviceOutcomes.length} real downloads`);
      assertEquals(
        r.deviceOutcomes.filter((s) => s !== "VERIFIED"),
        [],
        "every real download verified",
      );
      assert(
        r.rssAfterBytes - r.rssBeforeBytes < MAX_RSS_GROWTH_BYTES,
        `RSS grew by ${((r.rssAfterBytes - r.rssBeforeBytes) / MiB).toFixed(0)} MiB`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
  { sanitizeOps: false, sanitizeResources: false },
);
