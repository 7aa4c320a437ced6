/**
 * The bench's native ceiling: the C pipe (bench/native/pipe.c) built with the system compiler
 * and run against a real Mosquitto, the native device (the C++ firmware core with its flash in
 * memory) taking a transfer from a real sender, the target check, and the CPU clock the bench
 * reads the sender with.
 * @module
 */

import { freePort } from "../src/broker/mod.ts";
import { MiB } from "../src/format/mod.ts";
import { CHUNK_HEADER_BYTES, DEFAULT_WINDOW, MIN_CHUNK_BYTES } from "../src/protocol/mod.ts";
import { cpuSecondsBetween, readCpu } from "../bench/cpu_clock.ts";
import { buildNativePipe, NativePipeError, runNativePipe } from "../bench/native_ceiling.ts";
import {
  checkNativeTargets,
  MAX_CPU_RATIO_TO_NATIVE,
  MIN_SINGLE_RATIO_TO_NATIVE,
} from "../bench/native_targets.ts";
import { prepareNativeDevice, runNativeDevice } from "../bench/native_device.ts";
import { startSenderProcess } from "../bench/sender_process.ts";
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { mosquittoTest } from "./_broker.ts";

let built: Promise<string> | null = null;
/** Builds the pipe once for this file; the folder goes when the test process ends. */
function pipe(): Promise<string> {
  built ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "ota-native-test-" });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    return await buildNativePipe(dir);
  })();
  return built;
}

mosquittoTest(
  "the native pipe moves every CHUNK-sized message through Mosquitto and times its publisher",
  async (broker) => {
    const r = await runNativePipe(await pipe(), {
      url: broker.url,
      chunkBytes: 4096,
      totalBytes: 2 * MiB,
    });
    assertEquals(r.messages, 512);
    assertEquals(r.messageBytes, 4096 + CHUNK_HEADER_BYTES);
    assertEquals(r.window, DEFAULT_WINDOW);
    assertEquals(r.ackEvery, Math.ceil(DEFAULT_WINDOW / 2));
    assert(r.mibPerSecond > 0 && Number.isFinite(r.mibPerSecond), `rate ${r.mibPerSecond}`);
    assert(r.publisherCpuSecondsPerMiB > 0, `publisher CPU ${r.publisherCpuSecondsPerMiB}`);
    assert(r.receiverCpuSecondsPerMiB > 0, `receiver CPU ${r.receiverCpuSecondsPerMiB}`);
  },
);

mosquittoTest(
  "the native pipe's last acknowledgement reaches the publisher when acks stream back unread",
  async (broker) => {
    // A receiver that closed its socket with PUBACKs still unread reset the connection, and
    // the broker dropped the acknowledgements it had not read yet: the publisher timed out.
    // An ack after every message of a 1024-message window made that happen on every run.
    const r = await runNativePipe(await pipe(), {
      url: broker.url,
      chunkBytes: MIN_CHUNK_BYTES,
      totalBytes: 1024 * MIN_CHUNK_BYTES,
      window: 1024,
      ackEvery: 1,
      timeoutSeconds: 10,
    });
    assertEquals(r.messages, 1024);
  },
);

mosquittoTest(
  "the native device takes a transfer from the sender into its memory flash, verifies it and reports its CPU",
  async (broker) => {
    const root = await prepareNativeDevice();
    const size = 300 * 1024 + 17; // a last chunk shorter than the others
    const sender = await startSenderProcess({
      brokerUrl: broker.url,
      images: [{ product: "bench-native", version: "1.0.0", size }],
    });
    try {
      for (const [window, design] of [[0, "task"], [4, "inline"]] as const) {
        const r = await runNativeDevice(root, {
          port: broker.port,
          product: "bench-native",
          imageBytes: size,
          window,
          design,
        });
        assertEquals([r.status, r.bytes, r.gaps, r.nacks], ["VERIFIED", size, 0, 0]);
        assert(r.seconds > 0, `seconds ${r.seconds}`);
        assert(r.cpuSeconds > 0 && r.cpuSeconds < 10 * r.seconds, `device CPU ${r.cpuSeconds}`);
      }
    } finally {
      await sender.stop();
    }
  },
);

Deno.test("checkNativeTargets() names the device a verdict was measured with", () => {
  const v = checkNativeTargets({
    device: "native",
    singleRatioToNative: 0.5,
    singleImageBytes: 4 * MiB,
    senderCpuSecondsPerMiB: 0.004,
    nativeCpuSecondsPerMiB: 0.002,
  });
  assertEquals(v.map((t) => t.target.includes("(native device)")), [true, true]);
  assertEquals(v.map((t) => t.holds), [false, false]);
});

Deno.test("the native pipe fails with the address when no broker listens", async () => {
  const port = freePort();
  const err = await assertRejects(
    async () =>
      runNativePipe(await pipe(), {
        url: `mqtt://127.0.0.1:${port}`,
        chunkBytes: 4096,
        totalBytes: MiB,
      }),
    NativePipeError,
    `cannot connect to 127.0.0.1:${port}`,
  );
  assertEquals(err.code, "NATIVE_RUN_FAILED");
});

Deno.test("the native pipe refuses an ack batch larger than its window", async () => {
  await assertRejects(
    async () =>
      runNativePipe(await pipe(), {
        url: `mqtt://127.0.0.1:${freePort()}`,
        chunkBytes: 4096,
        totalBytes: MiB,
        window: 8,
        ackEvery: 16,
      }),
    NativePipeError,
    "--ack-every 16 exceeds --window 8",
  );
});

Deno.test("checkNativeTargets() holds one transfer to 0.8 of the native pipe", () => {
  const at = (ratio: number) =>
    checkNativeTargets({ singleRatioToNative: ratio, singleImageBytes: 4 * MiB })[0];
  assertEquals(at(MIN_SINGLE_RATIO_TO_NATIVE).holds, true);
  assertEquals(at(MIN_SINGLE_RATIO_TO_NATIVE - 0.01).holds, false);
  assertEquals(at(0.5).value, 0.5);
  assertEquals(at(0.9).note, undefined);
});

Deno.test("checkNativeTargets() holds the sender's CPU per MiB to 1.5 × the native publisher", () => {
  const cpu = (sender: number) =>
    checkNativeTargets({ senderCpuSecondsPerMiB: sender, nativeCpuSecondsPerMiB: 0.002 })[0];
  assertEquals(cpu(0.002 * MAX_CPU_RATIO_TO_NATIVE).holds, true);
  assertEquals(cpu(0.0031).holds, false);
  assertEquals(cpu(0.02).value, 10);
});

Deno.test("checkNativeTargets() notes an image other than 4 MiB and skips missing figures", () => {
  const v = checkNativeTargets({ singleRatioToNative: 0.9, singleImageBytes: MiB });
  assertEquals(v.length, 1);
  assert(v[0].note?.includes("1048576 B"), v[0].note);
  assertEquals(checkNativeTargets({ senderCpuSecondsPerMiB: 0.01 }), []);
});

Deno.test("cpuSecondsBetween() agrees with the kernel's clock ticks to within two ticks", () => {
  const before = readCpu("self");
  let x = 0;
  while (readCpu("self").tickSeconds - before.tickSeconds < 0.2) x += Math.sqrt(x + 1);
  const after = readCpu("self");
  const precise = cpuSecondsBetween(before, after);
  const ticks = after.tickSeconds - before.tickSeconds;
  assert(Math.abs(precise - ticks) <= 0.02, `precise ${precise} s, ticks ${ticks} s (${x > 0})`);
});

Deno.test("cpuSecondsBetween() falls back to clock ticks when a thread ended in between", () => {
  const before = { threads: new Map([[1, 5e8], [2, 3e8]]), tickSeconds: 10 };
  const after = { threads: new Map([[1, 6e8], [3, 1e8]]), tickSeconds: 10.5 };
  assertEquals(cpuSecondsBetween(before, after), 0.5);
  const kept = { threads: new Map([[1, 6e8], [2, 3e8], [3, 1e8]]), tickSeconds: 10.2 };
  assertEquals(cpuSecondsBetween(before, kept), 0.2);
});
