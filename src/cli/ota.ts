/**
 * The operator CLI: add, list, show and remove firmware images, and read the transfer and device
 * status history. Run as `deno task ota -- <command>`; `--help` works on every command.
 *
 * The command logic is {@linkcode runOta}, which takes its arguments and output streams so tests
 * run it in-process. Exit codes: 0 success, 1 failure, 2 usage error.
 *
 * @module
 */

import { dirname, isAbsolute, join, resolve } from "node:path";
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { Catalog, CatalogError, type CatalogErrorCode, type ImageMeta } from "../catalog/mod.ts";
import { generateSigningKeys } from "../protocol/signing.ts";

/** Somewhere {@linkcode runOta} writes text; `Deno.stdout` and `Deno.stderr` are ones. */
export interface OtaWriter {
  /** Writes some of `p` and returns how many bytes were written. */
  write(p: Uint8Array): Promise<number> | number;
}

/** What {@linkcode runOta} reads and writes besides its arguments. */
export interface OtaIo {
  /** Results. */
  stdout: OtaWriter;
  /** Errors, one line each. */
  stderr: OtaWriter;
  /** Environment lookup (for `OTA_KV_PATH`); default `Deno.env.get`. */
  env?: (name: string) => string | undefined;
  /**
   * Folder that relative `<file>` and `--kv` paths are resolved against; default the folder the
   * user ran `deno task` from (`INIT_CWD`), else the current folder.
   */
  cwd?: string;
}

/** Exit code of a successful command. */
export const EXIT_OK = 0;
/** Exit code of a command that failed. */
export const EXIT_FAILURE = 1;
/** Exit code of a command line that could not be understood. */
export const EXIT_USAGE = 2;
/** KV file used when neither `--kv` nor `OTA_KV_PATH` is given (relative to the project). */
export const DEFAULT_KV_PATH = ".data/ota.kv";
/** Characters of a SHA-256 shown in tables. */
export const SHORT_SHA_CHARS = 12;
/** Records `transfers` and `devices` show when no `--limit` is given. */
export const DEFAULT_HISTORY_ROWS = 20;

const INVOKE = "deno task ota --";

const GLOBAL_OPTIONS = {
  kv: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies ParseArgsOptionsConfig;

const GLOBAL_HELP = `Global options:
  --kv PATH     catalog KV file (default: $OTA_KV_PATH, else ${DEFAULT_KV_PATH})
  --json        print machine-readable JSON
  -h, --help    show help`;

const REF_HELP =
  "<ref> is a SHA-256, a unique SHA-256 prefix of at least 8 hex digits, or product@version.";

interface Context {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
  json: boolean;
  cwd: string;
  out: (text: string) => Promise<void>;
  catalog: () => Promise<Catalog>;
}

interface Command {
  words: string[];
  args: string[];
  summary: string;
  help: string;
  options: ParseArgsOptionsConfig;
  run: (ctx: Context) => Promise<number>;
}

const COMMANDS: Command[] = [
  {
    words: ["image", "add"],
    args: ["file"],
    summary: "add a firmware image (an ESP32 app, or any file with --generic)",
    help: `Options:
  --product P       product; for an ESP32 app, defaults to and must equal its project name
  --version V       version; for an ESP32 app, defaults to and must equal its app version
  --name N          display name (default: the file's name)
  --generic         accept a file that is not an ESP32 app image (needs --product, --version)
  --signature HEX   ECDSA P-256 signature r‖s over the image's SHA-256 (128 hex digits)

ESP32 app images are recognised from their bytes (0xE9 header, esp_app_desc_t); images built
for another chip than the ESP32 are refused.`,
    options: {
      product: { type: "string" },
      version: { type: "string" },
      name: { type: "string" },
      generic: { type: "boolean" },
      signature: { type: "string" },
    },
    run: imageAdd,
  },
  {
    words: ["image", "list"],
    args: [],
    summary: "list images, by product, newest version first",
    help: `Options:
  --product P   only images of this product`,
    options: { product: { type: "string" } },
    run: imageList,
  },
  {
    words: ["image", "show"],
    args: ["ref"],
    summary: "show everything known about one image",
    help: REF_HELP,
    options: {},
    run: imageShow,
  },
  {
    words: ["image", "rm"],
    args: ["ref"],
    summary: "remove an image and its stored bytes",
    help: REF_HELP,
    options: {},
    run: imageRm,
  },
  {
    words: ["transfers"],
    args: [],
    summary: "list recent transfers, newest first",
    help: `Options:
  --limit N     show at most N transfers (default ${DEFAULT_HISTORY_ROWS})`,
    options: { limit: { type: "string" } },
    run: transfers,
  },
  {
    words: ["devices"],
    args: [],
    summary: "list recent device status reports, newest first",
    help: `Options:
  --limit N     show at most N reports (default ${DEFAULT_HISTORY_ROWS})`,
    options: { limit: { type: "string" } },
    run: devices,
  },
  {
    words: ["key", "generate"],
    args: [],
    summary: "make an ECDSA P-256 key pair for signing manifests",
    help: `Options:
  --out DIR     folder for signing_key.pem (sender) and signing_pub.pem (devices); default .data/keys

Point the sender's signing.keyFile (OTA_SIGNING_KEY_FILE) at signing_key.pem and build the
firmware with signing_pub.pem: devices then refuse images whose signature does not verify.
Existing files are never overwritten.`,
    options: { out: { type: "string" } },
    run: keyGenerate,
  },
];

/** Options of every command together, so a lenient first parse can find the command words. */
const ALL_OPTIONS: ParseArgsOptionsConfig = Object.assign(
  {},
  GLOBAL_OPTIONS,
  ...COMMANDS.map((c) => c.options),
);

/** A command line that could not be understood; exits with {@linkcode EXIT_USAGE}. */
class UsageError extends Error {
  /** Stable reason. */
  readonly code = "USAGE";
  /** The help command that explains the right usage. */
  readonly helpFor: string;

  constructor(message: string, helpFor: string[]) {
    super(message);
    this.name = "UsageError";
    this.helpFor = [...helpFor, "--help"].join(" ");
  }
}

/** The file given to `image add` could not be read. */
class ImageFileError extends Error {
  /** Stable reason. */
  readonly code = "IMAGE_FILE_UNREADABLE";

  constructor(message: string) {
    super(message);
    this.name = "ImageFileError";
  }
}

/**
 * Runs one operator command, e.g. `runOta(["image", "list", "--json"], io)`, and returns its
 * exit code: {@linkcode EXIT_OK}, {@linkcode EXIT_FAILURE} (the command failed; one line on
 * stderr says what failed and what to do next) or {@linkcode EXIT_USAGE} (bad command line).
 */
export async function runOta(args: string[], io: OtaIo): Promise<number> {
  const env = io.env ?? ((name: string) => Deno.env.get(name));
  const cwd = io.cwd ?? env("INIT_CWD") ?? Deno.cwd();
  const err = (text: string) => writeAll(io.stderr, `${text}\n`);
  const out = (text: string) => writeAll(io.stdout, text.endsWith("\n") ? text : `${text}\n`);
  // `deno task ota -- x` passes the `--` on.
  const argv = args[0] === "--" ? args.slice(1) : args;

  let words: string[] = [];
  let catalog: Catalog | undefined;
  try {
    const lenient = parseArgs({ args: argv, options: ALL_OPTIONS, strict: false });
    const wantsHelp = lenient.values.help === true;
    const pos = lenient.positionals;
    if (pos[0] === "help") return await printHelp(out, pos.slice(1));
    if (pos.length === 0) {
      if (wantsHelp) return await printHelp(out, []);
      throw new UsageError("missing command", []);
    }
    const command = COMMANDS.find((c) => c.words.every((w, i) => pos[i] === w));
    if (!command) {
      if (pos[0] !== "image") throw new UsageError(`unknown command "${pos[0]}"`, []);
      if (pos.length > 1) throw new UsageError(`unknown image subcommand "${pos[1]}"`, ["image"]);
      if (wantsHelp) return await printHelp(out, ["image"]);
      throw new UsageError("missing image subcommand", ["image"]);
    }
    words = command.words;
    if (wantsHelp) return await printHelp(out, command.words);

    const strict = parseStrict(argv, command);
    const given = strict.positionals.slice(command.words.length);
    if (given.length < command.args.length) {
      throw new UsageError(`missing <${command.args[given.length]}>`, command.words);
    }
    if (given.length > command.args.length) {
      throw new UsageError(`unexpected argument "${given[command.args.length]}"`, command.words);
    }
    const kvOption = strict.values.kv as string | undefined;
    const kvPath = kvOption !== undefined
      ? resolvePath(cwd, kvOption)
      : env("OTA_KV_PATH") || DEFAULT_KV_PATH;
    return await command.run({
      values: strict.values,
      positionals: given,
      json: strict.values.json === true,
      cwd,
      out,
      catalog: async () => {
        if (kvPath !== ":memory:") await Deno.mkdir(dirname(kvPath), { recursive: true });
        catalog ??= await Catalog.open(kvPath);
        return catalog;
      },
    });
  } catch (e) {
    const prefix = ["ota", ...words].join(" ");
    if (e instanceof UsageError) {
      await err(`${prefix}: ${e.message}; run "${INVOKE} ${e.helpFor}" for usage`);
      return EXIT_USAGE;
    }
    if (e instanceof CatalogError) {
      await err(`${prefix}: ${e.message}; ${hintFor(e.code, words)}`);
      return e.code === "INVALID_ARGUMENT" ? EXIT_USAGE : EXIT_FAILURE;
    }
    if (e instanceof ImageFileError) {
      await err(`${prefix}: ${e.message}; check the path and that the file is readable`);
      return EXIT_FAILURE;
    }
    await err(`${prefix}: ${firstLine(e)}; check the arguments and try again`);
    return EXIT_FAILURE;
  } finally {
    catalog?.close();
  }
}

function parseStrict(argv: string[], command: Command) {
  try {
    return parseArgs({
      args: argv,
      options: { ...GLOBAL_OPTIONS, ...command.options },
      strict: true,
      allowPositionals: true,
    });
  } catch (e) {
    throw new UsageError(describeParseError(e), command.words);
  }
}

/** Turns a `node:util` parseArgs error into a short clause. */
function describeParseError(e: unknown): string {
  const code = (e as { code?: string }).code;
  const message = e instanceof Error ? e.message : String(e);
  const option = /'(-[^' ]+)/.exec(message)?.[1];
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") return `unknown option "${option}"`;
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    return /does not take an argument/.test(message)
      ? `option "${option}" takes no value`
      : `option "${option}" needs a value`;
  }
  return firstLine(e);
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
  const group = words[0] === "image" && words.length === 1;
  if (words.length > 0 && !group) {
    throw new UsageError(`unknown command "${words.join(" ")}"`, []);
  }
  const listed = COMMANDS.filter((c) => !group || c.words[0] === "image");
  const width = Math.max(...listed.map((c) => usageOf(c).length));
  const lines = listed.map((c) => `  ${usageOf(c).padEnd(width)}  ${c.summary}`);
  const title = group
    ? `Usage: ${INVOKE} image <add|list|show|rm> [options]\n\nManage firmware images.`
    : `Usage: ${INVOKE} <command> [options]\n\nOperate the mqtt-ota firmware catalog.`;
  await out(
    `${title}\n\nCommands:\n${lines.join("\n")}\n\n${GLOBAL_HELP}\n\n` +
      `Every command takes --help, e.g. "${INVOKE} image add --help".\n`,
  );
  return EXIT_OK;
}

function usageOf(c: Command): string {
  return [c.words.join(" "), ...c.args.map((a) => `<${a}>`)].join(" ");
}

async function imageAdd(ctx: Context): Promise<number> {
  const file = resolvePath(ctx.cwd, ctx.positionals[0]);
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(file);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "no such file" : firstLine(e);
    throw new ImageFileError(`Cannot read image file "${ctx.positionals[0]}": ${why}`);
  }
  const v = ctx.values;
  const catalog = await ctx.catalog();
  const meta = await catalog.addImage(bytes, {
    name: (v.name as string | undefined) ?? baseName(file),
    product: v.product as string | undefined,
    version: v.version as string | undefined,
    generic: v.generic === true,
    signature: v.signature as string | undefined,
  });
  if (ctx.json) {
    await ctx.out(JSON.stringify(meta, null, 2));
  } else {
    await ctx.out(
      `Added ${meta.product}@${meta.version} (${meta.kind}, ${formatSize(meta.size)})\n` +
        `sha256 ${meta.sha256}`,
    );
  }
  return EXIT_OK;
}

async function imageList(ctx: Context): Promise<number> {
  const catalog = await ctx.catalog();
  const images = await catalog.list(ctx.values.product as string | undefined);
  if (ctx.json) {
    await ctx.out(JSON.stringify(images, null, 2));
  } else if (images.length === 0) {
    await ctx.out(`No images. Add one with: ${INVOKE} image add <file>`);
  } else {
    await ctx.out(table(
      ["SHA256", "PRODUCT", "VERSION", "SIZE", "KIND", "ADDED", "NAME"],
      images.map((m) => [
        m.sha256.slice(0, SHORT_SHA_CHARS),
        m.product,
        m.version,
        formatSize(m.size),
        m.kind,
        formatTime(m.addedAt),
        m.name,
      ]),
      [3],
    ));
  }
  return EXIT_OK;
}

async function imageShow(ctx: Context): Promise<number> {
  const meta = await findOrThrow(await ctx.catalog(), ctx.positionals[0], "show");
  if (ctx.json) {
    await ctx.out(JSON.stringify(meta, null, 2));
    return EXIT_OK;
  }
  const rows: [string, string][] = [
    ["sha256", meta.sha256],
    ["product", meta.product],
    ["version", meta.version],
    ["name", meta.name],
    ["kind", meta.kind],
    ["size", `${formatSize(meta.size)} (${meta.size} bytes)`],
    ["added", meta.addedAt],
  ];
  if (meta.projectName !== undefined) rows.push(["project", meta.projectName]);
  if (meta.idfVersion !== undefined) rows.push(["idf", meta.idfVersion]);
  if (meta.chipId !== undefined) rows.push(["chip id", String(meta.chipId)]);
  rows.push(["signature", meta.signature ?? "none"]);
  const width = Math.max(...rows.map(([k]) => k.length));
  await ctx.out(rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n"));
  return EXIT_OK;
}

async function imageRm(ctx: Context): Promise<number> {
  const meta = await (await ctx.catalog()).remove(ctx.positionals[0]);
  if (ctx.json) {
    await ctx.out(JSON.stringify(meta, null, 2));
  } else {
    await ctx.out(`Removed ${meta.product}@${meta.version} (sha256 ${meta.sha256})`);
  }
  return EXIT_OK;
}

async function transfers(ctx: Context): Promise<number> {
  const records = await (await ctx.catalog()).listTransfers(limitOf(ctx, ["transfers"]));
  if (ctx.json) {
    await ctx.out(JSON.stringify(records, null, 2));
  } else if (records.length === 0) {
    await ctx.out("No transfers recorded yet");
  } else {
    await ctx.out(table(
      ["ENDED", "DEVICE", "IMAGE", "OUTCOME", "SENT", "TIME", "RATE", "RESENDS", "SENDER"],
      records.map((t) => [
        formatTime(t.endedAt),
        t.deviceId,
        `${t.product}@${t.version}`,
        t.outcome,
        formatSize(t.bytes),
        `${t.seconds.toFixed(1)} s`,
        t.seconds > 0 ? `${formatSize(t.bytes / t.seconds)}/s` : "-",
        String(t.resends),
        t.senderId,
      ]),
      [4, 5, 6, 7],
    ));
  }
  return EXIT_OK;
}

async function devices(ctx: Context): Promise<number> {
  const records = await (await ctx.catalog()).listDeviceStatus(limitOf(ctx, ["devices"]));
  if (ctx.json) {
    await ctx.out(JSON.stringify(records, null, 2));
  } else if (records.length === 0) {
    await ctx.out("No device status reports recorded yet");
  } else {
    await ctx.out(table(
      ["AT", "DEVICE", "STATUS", "VERSION", "SHA256", "DETAIL"],
      records.map((d) => [
        formatTime(d.at),
        d.deviceId,
        d.status,
        d.version,
        d.sha256.slice(0, SHORT_SHA_CHARS),
        d.detail,
      ]),
      [],
    ));
  }
  return EXIT_OK;
}

async function keyGenerate(ctx: Context): Promise<number> {
  const dir = resolvePath(ctx.cwd, (ctx.values.out as string | undefined) ?? ".data/keys");
  const files = { key: join(dir, "signing_key.pem"), pub: join(dir, "signing_pub.pem") };
  for (const f of Object.values(files)) {
    if (await Deno.stat(f).then(() => true, () => false)) {
      throw new Error(
        `Cannot generate keys: "${f}" exists and is never overwritten (use another --out)`,
      );
    }
  }
  const keys = await generateSigningKeys();
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(files.key, keys.privateKey, { mode: 0o600, createNew: true });
  await Deno.writeTextFile(files.pub, keys.publicKey, { createNew: true });
  await ctx.out(
    ctx.json
      ? JSON.stringify(files)
      : `Wrote ${files.key} (keep it secret; sender signing.keyFile) and ${files.pub} (devices)`,
  );
  return EXIT_OK;
}

async function findOrThrow(catalog: Catalog, ref: string, verb: string): Promise<ImageMeta> {
  const meta = await catalog.find(ref);
  if (!meta) throw new CatalogError("NOT_FOUND", `Cannot ${verb} image: no image matches "${ref}"`);
  return meta;
}

function limitOf(ctx: Context, words: string[]): number {
  const raw = ctx.values.limit as string | undefined;
  if (raw === undefined) return DEFAULT_HISTORY_ROWS;
  if (!/^[1-9]\d{0,5}$/.test(raw)) {
    throw new UsageError(`--limit "${raw}" is not a whole number from 1 to 999999`, words);
  }
  return Number(raw);
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
    case "STORAGE_ERROR":
      return "check the --kv path (or OTA_KV_PATH) and that the folder is writable";
  }
}

/**
 * Lays rows out as an aligned table with a header; columns in `right` are right-aligned (numbers
 * and sizes). Trailing spaces are trimmed.
 */
function table(header: string[], rows: string[][], right: number[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => right.includes(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))
      .join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

/** Formats a byte count as `512 B`, `256.0 KiB` or `1.00 MiB`. */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${Math.round(bytes)} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(2)} MiB`;
}

function formatTime(iso: string): string {
  return iso.replace("T", " ").slice(0, 19);
}

function resolvePath(cwd: string, path: string): string {
  if (path === ":memory:" || isAbsolute(path)) return path;
  return resolve(join(cwd, path));
}

function baseName(path: string): string {
  return path.split(/[\\/]/).pop() || path;
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
