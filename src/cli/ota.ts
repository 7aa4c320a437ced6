/**
 * The operator CLI: add, list, show and remove firmware images, roll them out to fleets, list
 * and label the device inventory, read the transfer and device status history, and make
 * signing keys. Run as `deno task ota <command>` (or with `--` after
 * `ota`); `--help` works on every command. This file dispatches; each command group lives in its
 * own file (image.ts, rollout.ts, devices.ts, fleet.ts, history.ts, catalog.ts, key.ts).
 *
 * The command logic is {@linkcode runOta}, which takes its arguments and output streams so tests
 * run it in-process. Exit codes: 0 success, 1 failure, 2 usage error.
 *
 * @module
 */

import { dirname } from "node:path";
import { Catalog, CatalogError, type CatalogErrorCode, isKvConnectUrl } from "../catalog/mod.ts";
import { escapeControl } from "../format/mod.ts";
import {
  ConfigError,
  DEFAULT_CONFIG,
  DEFAULT_CONFIG_FILE,
  loadCommandConfig,
} from "../service/config.ts";
import {
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  parseCommandLine,
  taskArgs,
  UsageError,
} from "../command/args.ts";
import {
  type Command,
  type Context,
  ImageFileError,
  INVOKE,
  MissingCatalogError,
} from "./_command.ts";
import { CATALOG_COMMANDS } from "./catalog.ts";
import { HISTORY_COMMANDS } from "./history.ts";
import { IMAGE_COMMANDS } from "./image.ts";
import { KEY_COMMANDS } from "./key.ts";
import { DEVICE_COMMANDS } from "./devices.ts";
import { FLEET_COMMANDS } from "./fleet.ts";
import { ROLLOUT_COMMANDS } from "./rollout.ts";
import { RolloutError } from "../rollout/mod.ts";
import { InventoryError } from "../inventory/mod.ts";

export { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from "../command/args.ts";

/** Somewhere {@linkcode runOta} writes text; `Deno.stdout` and `Deno.stderr` are ones. */
export interface OtaWriter {
  /** Writes some of `p` and returns how many bytes were written. */
  write(p: Uint8Array): Promise<number> | number;
}

/** What {@linkcode runOta} reads and writes besides its arguments. */
export interface OtaIo {
  /** Results. */
  stdout: OtaWriter;
  /** Errors and warnings, one line each. */
  stderr: OtaWriter;
  /** Environment (`OTA_KV_PATH` and the other `OTA_*` overrides); default the process's. */
  env?: Record<string, string | undefined>;
  /**
   * Folder that relative `<file>`, `--kv` and `--config` paths are resolved against; default
   * the folder the user ran `deno task` from (`INIT_CWD`), else the current folder.
   */
  cwd?: string;
}

const GLOBAL_OPTIONS = {
  kv: { type: "string" },
  config: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

const GLOBAL_HELP = `Global options:
  --kv PATH       catalog KV file (default: $OTA_KV_PATH, else kvPath of the config file,
                  else ${DEFAULT_CONFIG.kvPath}); the sender resolves it the same way
  --config FILE   sender config to read kvPath from (default: ${DEFAULT_CONFIG_FILE})
  --json          print machine-readable JSON
  -h, --help      show help`;

const COMMANDS: Command[] = [
  ...IMAGE_COMMANDS,
  ...ROLLOUT_COMMANDS,
  ...DEVICE_COMMANDS,
  ...FLEET_COMMANDS,
  ...HISTORY_COMMANDS,
  ...CATALOG_COMMANDS,
  ...KEY_COMMANDS,
];

/** Command groups: a first word that needs a second (`image add`). */
const GROUPS = [...new Set(COMMANDS.filter((c) => c.words.length > 1).map((c) => c.words[0]))];

/** Options of every command together, so a lenient first parse can find the command words. */
const ALL_OPTIONS = Object.assign({}, GLOBAL_OPTIONS, ...COMMANDS.map((c) => c.options));

/**
 * Runs one operator command, e.g. `runOta(["image", "list", "--json"], io)`, and returns its
 * exit code: {@linkcode EXIT_OK}, {@linkcode EXIT_FAILURE} (the command failed; one line on
 * stderr says what failed and what to do next) or {@linkcode EXIT_USAGE} (bad command line).
 */
export async function runOta(args: string[], io: OtaIo): Promise<number> {
  const env = io.env ?? Deno.env.toObject();
  const cwd = io.cwd ?? env.INIT_CWD ?? Deno.cwd();
  // One line each, escaped: an error may quote a device id or a reference verbatim.
  const err = (text: string) => writeAll(io.stderr, `${escapeControl(text)}\n`);
  const out = (text: string) => writeAll(io.stdout, text.endsWith("\n") ? text : `${text}\n`);
  const argv = taskArgs(args);

  let words: string[] = [];
  let catalog: Catalog | undefined;
  const prefix = () => ["ota", ...words].join(" ");
  try {
    const lenient = parseCommandLine(argv, ALL_OPTIONS, { strict: false, positionals: true });
    const wantsHelp = lenient.values.help === true;
    const pos = lenient.positionals;
    if (pos[0] === "help") return await printHelp(out, pos.slice(1));
    if (pos.length === 0) {
      if (wantsHelp) return await printHelp(out, []);
      parseCommandLine(argv, GLOBAL_OPTIONS, { positionals: true }); // names an unknown option
      throw new UsageError("missing command", []);
    }
    const command = COMMANDS.find((c) => c.words.every((w, i) => pos[i] === w));
    if (!command) {
      if (!GROUPS.includes(pos[0])) throw new UsageError(`unknown command "${pos[0]}"`, []);
      if (pos.length > 1) {
        throw new UsageError(`unknown ${pos[0]} subcommand "${pos[1]}"`, [pos[0]]);
      }
      if (wantsHelp) return await printHelp(out, [pos[0]]);
      throw new UsageError(`missing ${pos[0]} subcommand`, [pos[0]]);
    }
    words = command.words;
    if (wantsHelp) return await printHelp(out, command.words);

    const strict = parseCommandLine(argv, { ...GLOBAL_OPTIONS, ...command.options }, {
      positionals: true,
      helpFor: command.words,
    });
    const given = strict.positionals.slice(command.words.length);
    if (given.length < command.args.length) {
      throw new UsageError(`missing <${command.args[given.length]}>`, command.words);
    }
    if (given.length > command.args.length) {
      throw new UsageError(`unexpected argument "${given[command.args.length]}"`, command.words);
    }
    const kvPath = async () =>
      (await loadCommandConfig({
        configFile: strict.values.config as string | undefined,
        kvPath: strict.values.kv as string | undefined,
        env,
        callerDir: cwd,
        warn: (line) => err(`${prefix()}: warning: ${line}`),
        checkFiles: false,
      })).kvPath;
    return await command.run({
      values: strict.values,
      positionals: given,
      json: strict.values.json === true,
      cwd,
      out,
      warn: (text) => err(`${prefix()}: ${text}`),
      catalog: async (options = {}) => {
        if (catalog) return catalog;
        const path = await kvPath();
        if (path !== ":memory:" && !isKvConnectUrl(path)) {
          const exists = await Deno.stat(path).then((s) => s.isFile, () => false);
          if (!exists && !options.create) throw new MissingCatalogError(path);
          await Deno.mkdir(dirname(path), { recursive: true });
        }
        catalog = await Catalog.open(path);
        return catalog;
      },
    });
  } catch (e) {
    if (e instanceof UsageError) {
      await err(
        `${prefix()}: ${e.message}; run "${INVOKE} ${
          [...e.helpFor, "--help"].join(" ")
        }" for usage`,
      );
      return EXIT_USAGE;
    }
    if (e instanceof CatalogError) {
      await err(`${prefix()}: ${e.message}; ${hintFor(e.code, words)}`);
      return e.code === "INVALID_ARGUMENT" ? EXIT_USAGE : EXIT_FAILURE;
    }
    if (e instanceof RolloutError || e instanceof InventoryError) {
      // Their messages name the value and say what to do; a bad argument is a usage error.
      if (e.code === "INVALID_ARGUMENT") {
        await err(`${prefix()}: ${e.message}; run "${INVOKE} ${[...words, "--help"].join(" ")}"`);
        return EXIT_USAGE;
      }
      await err(`${prefix()}: ${e.message}`);
      return EXIT_FAILURE;
    }
    if (e instanceof MissingCatalogError) {
      await err(
        `${prefix()}: ${e.message}; create it by adding an image ("${INVOKE} image add <file> ` +
          `--kv ${e.kvPath}") or by starting the sender, or fix --kv, OTA_KV_PATH or kvPath ` +
          `in the config`,
      );
      return EXIT_FAILURE;
    }
    if (e instanceof ImageFileError) {
      await err(`${prefix()}: ${e.message}; check the path and that the file is readable`);
      return EXIT_FAILURE;
    }
    if (e instanceof ConfigError) {
      await err(`${prefix()}: ${e.message}; fix it in the config file or the environment`);
      return EXIT_FAILURE;
    }
    await err(`${prefix()}: ${firstLine(e)}; check the arguments and try again`);
    return EXIT_FAILURE;
  } finally {
    catalog?.close();
  }
}

async function printHelp(out: Context["out"], words: string[]): Promise<number> {
  const command = COMMANDS.find((c) =>
    c.words.length === words.length && c.words.every((w, i) => words[i] === w)
  );
  if (command) {
    const args = command.args.map((a) => ` <${a}>`).join("");
    await out(
      `Usage: ${INVOKE} ${command.words.join(" ")}${args} [options]\n\n` +
        `${capitalise(command.summary)}.\n\n${command.help}\n\n${GLOBAL_HELP}\n`,
    );
    return EXIT_OK;
  }
  const group = words.length === 1 && GROUPS.includes(words[0]) ? words[0] : undefined;
  if (words.length > 0 && !group) {
    throw new UsageError(`unknown command "${words.join(" ")}"`, []);
  }
  const listed = COMMANDS.filter((c) => !group || c.words[0] === group);
  const width = Math.max(...listed.map((c) => usageOf(c).length));
  const lines = listed.map((c) => `  ${usageOf(c).padEnd(width)}  ${c.summary}`);
  const subcommands = listed.map((c) => c.words[1]).join("|");
  const title = group
    ? `Usage: ${INVOKE} ${group} <${subcommands}> [options]`
    : `Usage: ${INVOKE} <command> [options]\n\nOperate the mqtt-ota firmware catalog, its rollouts and its devices.`;
  await out(
    `${title}\n\nCommands:\n${lines.join("\n")}\n\n${GLOBAL_HELP}\n\n` +
      `Every command takes --help, e.g. "${INVOKE} image add --help"; the "--" after ota ` +
      `is optional.\n`,
  );
  return EXIT_OK;
}

function usageOf(c: Command): string {
  return [c.words.join(" "), ...c.args.map((a) => `<${a}>`)].join(" ");
}

function hintFor(code: CatalogErrorCode, words: string[]): string {
  switch (code) {
    case "NOT_AN_APP_IMAGE":
      return "to store it as a plain file, add --generic --product P --version V";
    case "WRONG_CHIP":
      return "rebuild it for the ESP32 (idf.py set-target esp32) and add that build";
    case "VERSION_MISMATCH":
      return "omit --version to use the app descriptor's, or rebuild with the version you meant";
    case "PRODUCT_MISMATCH":
      return "omit --product to use the app descriptor's, or rebuild the right project";
    case "DUPLICATE_VERSION":
      return `build a new version, or remove the old image first with "${INVOKE} image rm <product>@<version>"`;
    case "DUPLICATE_IMAGE":
      return `nothing to do; "${INVOKE} image list" shows it`;
    case "NOT_FOUND":
      return `run "${INVOKE} image list" to see the catalog`;
    case "AMBIGUOUS_REF":
      return "give more digits of the SHA-256, or product@version";
    case "INVALID_ARGUMENT":
      return `run "${INVOKE} ${[...words, "--help"].join(" ")}" for usage`;
    case "CORRUPT_IMAGE":
      return "remove it and add it again";
    case "MEMORY_BOUND":
      return "wait for transfers to end, or raise cache.maxBytes";
    case "STORAGE_ERROR":
      return "check --kv (or OTA_KV_PATH, or kvPath in the config) and that the folder is writable";
  }
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}

const ENCODER = new TextEncoder();

async function writeAll(writer: OtaWriter, text: string): Promise<void> {
  let data = ENCODER.encode(text);
  while (data.length > 0) data = data.subarray(await writer.write(data));
}

if (import.meta.main) {
  Deno.exit(await runOta(Deno.args, { stdout: Deno.stdout, stderr: Deno.stderr }));
}
