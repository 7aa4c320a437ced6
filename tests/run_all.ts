/**
 * `deno task test`: builds the firmware core on the host and runs its C++ tests (ctest), then
 * every Deno test (unit, integration against a real Mosquitto, end to end with the host
 * receiver). Exits non-zero when anything fails.
 * @module
 */

import { parseArgs } from "node:util";

const HELP = `Usage: deno task test [-- --only deno|cpp] [-- deno test filter args]

Builds firmware/host with CMake and runs ctest, then runs deno test over tests/.
Needs cmake, g++, libgtest-dev, libmosquitto-dev, libmbedtls-dev and mosquitto (apt); .ci/run
installs them. Set OTA_REQUIRE_MOSQUITTO=1 to make a missing Mosquitto a failure.`;

const root = new URL("..", import.meta.url).pathname;

/** Passed and failed test counts read from the runners' closing lines. */
const counts = { passed: 0, failed: 0 };

/** Runs a command, streaming its output, and adds the test counts its output reports. */
async function run(cmd: string, args: string[], cwd = root): Promise<boolean> {
  console.log(`\n$ ${cmd} ${args.join(" ")}`);
  const child = new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "inherit" }).spawn();
  let tail = "";
  const text = new TextDecoder();
  for await (const part of child.stdout) {
    await Deno.stdout.write(part);
    tail = (tail + text.decode(part, { stream: true })).slice(-4096);
  }
  const status = await child.status;
  // deno test: "ok | 216 passed | 0 failed"; ctest: "100% tests passed, 0 tests failed out of 107".
  // deno-lint-ignore no-control-regex -- strips the colour codes of the runners' output
  const plain = tail.replace(/\x1b\[[0-9;]*m/g, "");
  const deno = plain.match(/\|\s*(\d+) passed[^|\n]*\|\s*(\d+) failed/);
  const ctest = plain.match(/tests passed, (\d+) tests failed out of (\d+)/);
  if (deno) {
    counts.passed += Number(deno[1]);
    counts.failed += Number(deno[2]);
  } else if (ctest) {
    counts.passed += Number(ctest[2]) - Number(ctest[1]);
    counts.failed += Number(ctest[1]);
  }
  return status.success;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

async function cpp(): Promise<boolean> {
  if (!exists(`${root}firmware/host/CMakeLists.txt`)) {
    console.log("firmware/host/CMakeLists.txt not found: no C++ tests to run");
    return true;
  }
  const build = `${root}firmware/build-host`;
  return await run("cmake", [
    "-S",
    "firmware/host",
    "-B",
    build,
    "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
  ]) &&
    await run("cmake", ["--build", build, "--parallel", "2"]) &&
    await run("ctest", ["--test-dir", build, "--output-on-failure"]);
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: { only: { type: "string" }, help: { type: "boolean", short: "h" } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const results: Array<[string, boolean]> = [];
  if (values.only !== "deno") results.push(["C++ (ctest)", await cpp()]);
  if (values.only !== "cpp") {
    const cppOk = results.every(([, ok]) => ok);
    if (!cppOk) {
      console.log(
        "C++ build or tests failed; the Deno tests still run (the end-to-end ones may fail)",
      );
    }
    results.push([
      "Deno (deno test)",
      await run(Deno.execPath(), ["test", "-A", ...positionals, "tests/"]),
    ]);
  }
  console.log("\nSummary:");
  for (const [name, ok] of results) console.log(`  ${ok ? "ok  " : "FAIL"} ${name}`);
  console.log(`${counts.passed} passed, ${counts.failed} failed`);
  return results.every(([, ok]) => ok) ? 0 : 1;
}

Deno.exit(await main());
