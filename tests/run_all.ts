/**
 * `deno task test`: builds the firmware core on the host and runs its C++ tests (ctest), then
 * every Deno test (unit, integration against a real Mosquitto, end to end with the host
 * receiver). Exits non-zero when anything fails.
 * @module
 */

import {
  EXIT_FAILURE,
  EXIT_OK,
  parseCommandLine,
  reportUsage,
  UsageError,
} from "../src/command/args.ts";

/** Debian packages the whole suite needs. */
const APT_PACKAGES = "cmake g++ libgtest-dev libmosquitto-dev libmbedtls-dev mosquitto";

const HELP = `Usage: deno task test [--] [options] [-- deno test arguments]

Builds firmware/host with CMake and runs its C++ tests (ctest), then runs deno test over tests/.

Options:
  --only cpp|deno   run only the C++ tests, or only the Deno tests
  -h, --help        this text

Other arguments go to deno test (options of deno test after a second "--"), e.g.
  deno task test --only deno tests/cli_test.ts
  deno task test -- --only deno -- --filter "image add"

Needs ${APT_PACKAGES}
(apt-get install -y ${APT_PACKAGES}); .ci/run installs them.
Set OTA_REQUIRE_MOSQUITTO=1 to make a missing Mosquitto a failure instead of skipped tests.`;

const root = new URL("..", import.meta.url).pathname;

/** Passed and failed test counts read from the runners' closing lines. */
const counts = { passed: 0, failed: 0 };

/** Runs a command, streaming its output, and adds the test counts its output reports. */
async function run(cmd: string, args: string[], cwd = root): Promise<boolean> {
  console.log(`\n$ ${cmd} ${args.join(" ")}`);
  let child;
  try {
    child = new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "inherit" }).spawn();
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    console.error(
      `${cmd} is not installed: install the build tools with apt-get install -y ${APT_PACKAGES}, ` +
        `or run only the Deno tests with deno task test --only deno`,
    );
    return false;
  }
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

async function main(args: string[]): Promise<number> {
  let values, positionals;
  try {
    ({ values, positionals } = parseCommandLine(args, {
      only: { type: "string" },
      help: { type: "boolean", short: "h" },
    }, { positionals: true }));
    if (values.only !== undefined && values.only !== "cpp" && values.only !== "deno") {
      throw new UsageError(`option "--only" is "${values.only}", expected cpp or deno`);
    }
  } catch (err) {
    if (err instanceof UsageError) return reportUsage("test", err);
    throw err;
  }
  if (values.help) {
    console.log(HELP);
    return EXIT_OK;
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
  return results.every(([, ok]) => ok) ? EXIT_OK : EXIT_FAILURE;
}

Deno.exit(await main(Deno.args));
