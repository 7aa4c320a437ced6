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

async function run(cmd: string, args: string[], cwd = root): Promise<boolean> {
  console.log(`\n$ ${cmd} ${args.join(" ")}`);
  const status = await new Deno.Command(cmd, { args, cwd, stdout: "inherit", stderr: "inherit" })
    .spawn().status;
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
  return results.every(([, ok]) => ok) ? 0 : 1;
}

Deno.exit(await main());
