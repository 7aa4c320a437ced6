/**
 * `deno task fuzz`: builds the C++ libFuzzer targets of the firmware core (firmware/fuzz, clang
 * with AddressSanitizer and UndefinedBehaviorSanitizer) and runs them for a time budget:
 * `fuzz_codec` (every decoder, the topic-aware type check, the topic parser) and `fuzz_receiver`
 * (the protocol §8 state machine fed message, chunk and clock records after a valid MANIFEST).
 * The seed corpus is written at build time from tests/vectors; what the fuzzer adds to it stays
 * in firmware/build-fuzz/corpus/ for the next run. An input that crashes, leaks, trips a
 * sanitizer, breaks a property of the drivers or times out is saved as a regression test under
 * firmware/test/fuzz_regressions/, which `deno task test` replays without clang.
 * @module
 */

import {
  EXIT_FAILURE,
  EXIT_OK,
  intOption,
  parseCommandLine,
  reportUsage,
  UsageError,
} from "../../src/command/args.ts";

/** Budget of a run when `--seconds` is not given. */
const DEFAULT_SECONDS = 300;
/** Share of the budget the receiver target gets: it has far more states than the codec. */
const RECEIVER_SHARE = 2 / 3;
/** One input running longer than this is a hang (libFuzzer `-timeout`). */
const INPUT_TIMEOUT_SECONDS = 10;
/** Memory a target may use before libFuzzer reports an out-of-memory input. */
const RSS_LIMIT_MB = 2048;
/** Longest input per target: the codec needs room for a CHUNK over MAX_CHUNK_BYTES (61 440). */
const MAX_INPUT_BYTES = { codec: 65536, receiver: 16384 } as const;
/**
 * AddressSanitizer's options unless ASAN_OPTIONS is set. A 16 MiB quarantine still holds the
 * blocks a typical input frees (most allocate less than 1 MiB), so a use after free within an
 * input is still caught; the default 256 MiB made every allocation touch fresh pages, and the
 * receiver target spent half its CPU time in page faults (measured: 4.5 s against 2.0 s of CPU
 * for one pass over a 1574-input corpus).
 */
const ASAN_OPTIONS = "quarantine_size_mb=16";
/** libFuzzer's names for the inputs it saves when something fails. */
const FAILURE_KINDS = ["crash", "leak", "timeout", "oom"];

/** Hostile messages the TypeScript sender fuzz sends by default (issue budget: 100 000). */
const DEFAULT_SENDER_MESSAGES = 100_000;

const HELP =
  `Usage: deno task fuzz [--] [--seconds N] [--messages N] [--target codec|receiver|sender|all]
                      [--build-only]

Builds the C++ fuzz targets of the firmware core with clang (libFuzzer, AddressSanitizer,
UndefinedBehaviorSanitizer) in firmware/build-fuzz and runs them for N seconds in all
(default ${DEFAULT_SECONDS}; the receiver target gets ${Math.round(RECEIVER_SHARE * 100)}%):
  fuzz_codec     every decoder of the codec, the topic-aware type check and the topic parser;
                 a decoded message must encode back to the same bytes
  fuzz_receiver  the receiver state machine after a valid MANIFEST, fed records: raw messages on
                 any topic (whole or in fragments), chunks, runs of chunks, clock steps, ERRORs
                 and MANIFESTs; it must publish only valid messages in its own namespace and
                 never report VERIFIED for bytes that do not hash to the image
Then (target sender or all) the TypeScript side: N seeded hostile REQUEST/ACK/STATUS messages
(default ${DEFAULT_SENDER_MESSAGES}) against a real sender serving real devices through a real
Mosquitto (tests/sender_fuzz_test.ts; deno task test runs 5000 of them, deno task fuzz-ts the same
100 000 alone).

A failing input is written to firmware/test/fuzz_regressions/<target>-<kind>-<hash>.hex and the
run fails; deno task test replays every file there (no clang needed). Fix the core, then rename
the file to say what it found.

Needs clang, cmake and libmbedtls-dev (apt-get install clang cmake libmbedtls-dev).

Options:
  --seconds N    time budget for both targets together (default ${DEFAULT_SECONDS})
  --messages N   hostile messages of the sender fuzz (default ${DEFAULT_SENDER_MESSAGES}; 0 skips it)
  --target T     codec, receiver, sender or all (default all)
  --build-only   build the targets and the seed corpus, do not fuzz
  --help         this text`;

const root = new URL("../..", import.meta.url).pathname;
const build = `${root}firmware/build-fuzz`;
const regressions = `${root}firmware/test/fuzz_regressions`;

type Target = keyof typeof MAX_INPUT_BYTES;

/** What one target's run reports (libFuzzer's closing lines). */
interface RunResult {
  target: Target;
  seconds: number;
  executions: number;
  execPerSecond: number;
  cov: number;
  ft: number;
  corpus: number;
  peakRssMb: number;
  failures: string[];
}

interface Args {
  seconds: number;
  targets: Target[];
  /** Messages of the TypeScript sender fuzz; 0 when it does not run. */
  senderMessages: number;
  buildOnly: boolean;
}

/** Parses the command line; `null` when it asked for help (printed here). */
function parse(argv: string[]): Args | null {
  const { values } = parseCommandLine(argv, {
    seconds: { type: "string" },
    messages: { type: "string" },
    target: { type: "string" },
    "build-only": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    console.log(HELP);
    return null;
  }
  const seconds = intOption(values.seconds, "--seconds", { min: 2 }) ?? DEFAULT_SECONDS;
  const target = String(values.target ?? "all");
  if (target !== "all" && target !== "sender" && !(target in MAX_INPUT_BYTES)) {
    throw new UsageError(
      `option "--target" is "${target}", expected codec, receiver, sender or all`,
    );
  }
  const targets: Target[] = target === "all"
    ? ["codec", "receiver"]
    : target === "sender"
    ? []
    : [target as Target];
  const messages = intOption(values.messages, "--messages", { min: 0 }) ??
    DEFAULT_SENDER_MESSAGES;
  const senderMessages = target === "all" || target === "sender" ? messages : 0;
  return { seconds, targets, senderMessages, buildOnly: values["build-only"] === true };
}

/** Runs a command with inherited output; true when it exits with 0. */
async function run(cmd: string, args: string[]): Promise<boolean> {
  console.log(`$ ${cmd} ${args.join(" ")}`);
  const { success } = await new Deno.Command(cmd, { args, cwd: root }).output();
  return success;
}

async function haveCommand(cmd: string): Promise<boolean> {
  try {
    const { success } = await new Deno.Command(cmd, { args: ["--version"], stdout: "null" })
      .output();
    return success;
  } catch {
    return false;
  }
}

async function buildTargets(): Promise<boolean> {
  if (!await haveCommand("clang++")) {
    console.error("Cannot build the fuzz targets: clang++ not found; apt-get install clang");
    return false;
  }
  return await run("cmake", [
    "-S",
    "firmware/fuzz",
    "-B",
    build,
    "-DCMAKE_CXX_COMPILER=clang++",
  ]) && await run("cmake", ["--build", build, "--parallel", "2"]);
}

function listDir(path: string): string[] {
  try {
    return [...Deno.readDirSync(path)].filter((e) => e.isFile).map((e) => e.name);
  } catch {
    return [];
  }
}

function last(text: string, re: RegExp): RegExpMatchArray | null {
  const all = [...text.matchAll(new RegExp(re.source, "g"))];
  return all.length > 0 ? all[all.length - 1] : null;
}

/** Keeps an input libFuzzer saved as a hex regression file; returns the file's path. */
function keepRegression(target: Target, artifact: string, why: string): string {
  const bytes = Deno.readFileSync(artifact);
  const name = artifact.split("/").pop()!;
  const kind = FAILURE_KINDS.find((k) => name.startsWith(`${target}-${k}-`)) ?? "crash";
  const hash = name.slice(name.lastIndexOf("-") + 1, name.lastIndexOf("-") + 9);
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const lines = hex.match(/.{1,64}/g) ?? [];
  const path = `${regressions}/${target}-${kind}-${hash}.hex`;
  Deno.mkdirSync(regressions, { recursive: true });
  Deno.writeTextFileSync(
    path,
    `# fuzz_${target} (deno task fuzz): ${why}\n${lines.join("\n")}\n`,
  );
  return path;
}

/** The first line that says why libFuzzer stopped: a broken property or a sanitizer report. */
function failureReason(log: string): string {
  const line = log.split("\n").find((l) =>
    l.startsWith("Property broken:") ||
    /ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)/.test(l) ||
    l.includes("runtime error:")
  );
  return (line ?? "libFuzzer stopped with a failure").trim();
}

/**
 * Writes the target's regression inputs (hex under firmware/test/fuzz_regressions/) as binary
 * files into a corpus directory, so every run replays them first under the sanitizers: the host
 * build's gtest replays them too, but without AddressSanitizer a memory error may pass there.
 */
function regressionCorpus(target: Target): string {
  const dir = `${build}/regressions/${target}`;
  try {
    Deno.removeSync(dir, { recursive: true });
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  Deno.mkdirSync(dir, { recursive: true });
  for (const name of listDir(regressions)) {
    if (!name.startsWith(`${target}-`) || !name.endsWith(".hex")) continue;
    const hex = Deno.readTextFileSync(`${regressions}/${name}`).split("\n")
      .filter((line) => !line.startsWith("#")).join("").replace(/\s+/g, "");
    const bytes = Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
    Deno.writeFileSync(`${dir}/${name.slice(0, -4)}`, bytes);
  }
  return dir;
}

async function fuzz(target: Target, seconds: number): Promise<RunResult> {
  const corpus = `${build}/corpus/${target}`;
  const artifacts = `${build}/artifacts`;
  Deno.mkdirSync(corpus, { recursive: true });
  Deno.mkdirSync(artifacts, { recursive: true });
  for (const name of listDir(artifacts)) {
    if (name.startsWith(`${target}-`)) Deno.removeSync(`${artifacts}/${name}`);
  }
  const args = [
    `-max_total_time=${seconds}`,
    `-timeout=${INPUT_TIMEOUT_SECONDS}`,
    `-rss_limit_mb=${RSS_LIMIT_MB}`,
    `-max_len=${MAX_INPUT_BYTES[target]}`,
    "-print_final_stats=1",
    `-artifact_prefix=${artifacts}/${target}-`,
    corpus,
    `${build}/seeds/${target}`,
    regressionCorpus(target),
  ];
  console.log(`\n$ fuzz_${target} ${args.join(" ")}`);
  const child = new Deno.Command(`${build}/fuzz_${target}`, {
    args,
    cwd: build,
    env: { ASAN_OPTIONS: Deno.env.get("ASAN_OPTIONS") ?? ASAN_OPTIONS },
    stdout: "inherit",
    stderr: "piped",
  }).spawn();
  // libFuzzer logs on stderr: keep it all for the summary, show the progress pulses and reports.
  let log = "";
  const text = new TextDecoder();
  let pending = "";
  for await (const part of child.stderr) {
    const chunk = text.decode(part, { stream: true });
    log += chunk;
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop()!;
    for (const line of lines) {
      if (!/^#\d+\s+(NEW|REDUCE)/.test(line)) console.error(line);
    }
  }
  if (pending) console.error(pending);
  const status = await child.status;
  const done = last(log, /#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/);
  const stat = (name: string) =>
    Number(last(log, new RegExp(`stat::${name}:\\s+(\\d+)`))?.[1] ?? 0);
  const failures: string[] = [];
  for (const name of listDir(artifacts)) {
    if (FAILURE_KINDS.some((k) => name.startsWith(`${target}-${k}-`))) {
      failures.push(keepRegression(target, `${artifacts}/${name}`, failureReason(log)));
    }
  }
  if (!status.success && failures.length === 0) {
    failures.push(`fuzz_${target} exited with ${status.code} without saving an input`);
  }
  return {
    target,
    seconds,
    executions: stat("number_of_executed_units") || Number(done?.[1] ?? 0),
    execPerSecond: stat("average_exec_per_sec"),
    cov: Number(done?.[2] ?? 0),
    ft: Number(done?.[3] ?? 0),
    corpus: Number(done?.[4] ?? 0),
    peakRssMb: stat("peak_rss_mb"),
    failures,
  };
}

/**
 * The TypeScript half: `messages` seeded hostile messages against a real sender serving real
 * devices through a real Mosquitto (tests/sender_fuzz_test.ts, OTA_FUZZ_SEED replays a seed).
 */
async function fuzzSender(messages: number): Promise<boolean> {
  console.log(`\nSender fuzz: ${messages} hostile messages while real devices download`);
  const { success } = await new Deno.Command(Deno.execPath(), {
    args: ["test", "--allow-all", "tests/sender_fuzz_test.ts"],
    cwd: root,
    env: { OTA_FUZZ_MESSAGES: String(messages), OTA_REQUIRE_MOSQUITTO: "1" },
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  return success;
}

async function main(): Promise<number> {
  let args: Args | null;
  try {
    args = parse(Deno.args);
  } catch (err) {
    if (err instanceof UsageError) return reportUsage("fuzz", err);
    throw err;
  }
  if (!args) return EXIT_OK;
  if (args.targets.length > 0 && !await buildTargets()) return EXIT_FAILURE;
  if (args.buildOnly) return EXIT_OK;
  const results: RunResult[] = [];
  for (const target of args.targets) {
    const share = args.targets.length === 1
      ? 1
      : target === "receiver"
      ? RECEIVER_SHARE
      : 1 - RECEIVER_SHARE;
    results.push(await fuzz(target, Math.max(1, Math.round(args.seconds * share))));
  }
  console.log("\nSummary:");
  console.log("  target    seconds  executions  exec/s    cov     ft  corpus  peak RSS  failures");
  for (const r of results) {
    console.log(
      `  ${r.target.padEnd(8)} ${String(r.seconds).padStart(8)} ${
        String(r.executions).padStart(11)
      } ${String(r.execPerSecond).padStart(7)} ${String(r.cov).padStart(6)} ${
        String(r.ft).padStart(6)
      } ${String(r.corpus).padStart(7)} ${`${r.peakRssMb} MiB`.padStart(9)} ${
        String(r.failures.length).padStart(9)
      }`,
    );
  }
  const failures = results.flatMap((r) => r.failures);
  if (args.senderMessages > 0 && !await fuzzSender(args.senderMessages)) {
    failures.push(`the sender fuzz (${args.senderMessages} messages) failed: see its output above`);
  }
  for (const f of failures) console.log(`  FAILED: ${f}`);
  if (failures.length > 0) {
    console.log(
      "A failing input is now a regression test (deno task test replays it): fix the core, " +
        "then rename the file to say what it found.",
    );
    return EXIT_FAILURE;
  }
  return EXIT_OK;
}

Deno.exit(await main());
