/**
 * `deno task ota -- image add|list|show|rm`: the firmware images in the catalog. This file only
 * parses and prints; the operations are in `src/ops/images.ts`.
 * @module
 */

import { escapeControl, formatBytes, formatPairs, formatTable } from "../format/mod.ts";
import { resolveFrom } from "../service/config.ts";
import { addImage, listImages, removeImage, SEMVER_HINT, showImage } from "../ops/images.ts";
import { EXIT_OK } from "../command/args.ts";
import { type Command, type Context, formatTime, ImageFileError, INVOKE } from "./_command.ts";

/** Characters of a SHA-256 shown in tables. */
export const SHORT_SHA_CHARS = 12;

const REF_HELP =
  "<ref> is a SHA-256, a unique SHA-256 prefix of at least 8 hex digits, or product@version.";

/** The `image` commands. */
export const IMAGE_COMMANDS: Command[] = [
  {
    words: ["image", "add"],
    args: ["file"],
    summary: "add a firmware image (an ESP32 app, or any file with --generic)",
    help: `Options:
  --product P       product; for an ESP32 app, defaults to and must equal its project name
  --version V       version; for an ESP32 app, defaults to and must equal its app version
                    (a semantic version, ${SEMVER_HINT})
  --name N          display name (default: the file's name)
  --generic         accept a file that is not an ESP32 app image (needs --product, --version)
  --signature HEX   ECDSA P-256 signature r‖s over the image's SHA-256 (128 hex digits)
  --release         also start a one-wave rollout of it to every device of its product
                    (without it the image is only stored: devices get it through a rollout,
                    see "${INVOKE} rollout create --help"); when another rollout holds the
                    product the add is refused and nothing is stored

ESP32 app images are recognised from their bytes (0xE9 header, esp_app_desc_t); images built
for another chip than the ESP32 are refused. This is the one command that creates the catalog
when it does not exist yet.`,
    options: {
      product: { type: "string" },
      version: { type: "string" },
      name: { type: "string" },
      generic: { type: "boolean" },
      signature: { type: "string" },
      release: { type: "boolean" },
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
];

async function imageAdd(ctx: Context): Promise<number> {
  const file = resolveFrom(ctx.cwd, ctx.positionals[0]);
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(file);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "no such file" : firstLine(e);
    throw new ImageFileError(`Cannot read image file "${ctx.positionals[0]}": ${why}`);
  }
  const v = ctx.values;
  const { image: meta, rollout, warnings } = await addImage(
    await ctx.catalog({ create: true }),
    bytes,
    {
      name: (v.name as string | undefined) ?? baseName(file),
      product: v.product as string | undefined,
      version: v.version as string | undefined,
      generic: v.generic === true,
      signature: v.signature as string | undefined,
      release: v.release === true,
    },
  );
  for (const warning of warnings) await ctx.warn(`warning: ${warning}`);
  if (ctx.json) {
    await ctx.out(JSON.stringify(rollout ? { image: meta, rollout } : meta, null, 2));
  } else {
    await ctx.out(
      escapeControl(
        `Added ${meta.product}@${meta.version} (${meta.kind}, ${formatBytes(meta.size)})`,
      ) +
        `\nsha256 ${meta.sha256}` +
        (rollout === undefined
          ? ""
          : `\n${
            escapeControl(`Released to every ${meta.product} device as rollout ${rollout.id}`)
          }; follow it with: ${INVOKE} rollout show ${rollout.id}`),
    );
  }
  return EXIT_OK;
}

async function imageList(ctx: Context): Promise<number> {
  const images = await listImages(await ctx.catalog(), ctx.values.product as string | undefined);
  if (ctx.json) {
    await ctx.out(JSON.stringify(images, null, 2));
  } else if (images.length === 0) {
    await ctx.out(`No images. Add one with: ${INVOKE} image add <file>`);
  } else {
    await ctx.out(formatTable(
      ["SHA256", "PRODUCT", "VERSION", "SIZE", "KIND", "ADDED", "NAME"],
      images.map((m) => [
        m.sha256.slice(0, SHORT_SHA_CHARS),
        m.product,
        m.version,
        formatBytes(m.size),
        m.kind,
        formatTime(m.addedAt),
        m.name,
      ]),
      { right: [3] },
    ));
  }
  return EXIT_OK;
}

async function imageShow(ctx: Context): Promise<number> {
  const meta = await showImage(await ctx.catalog(), ctx.positionals[0]);
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
    ["size", `${formatBytes(meta.size)} (${meta.size} bytes)`],
    ["added", meta.addedAt],
  ];
  if (meta.projectName !== undefined) rows.push(["project", meta.projectName]);
  if (meta.idfVersion !== undefined) rows.push(["idf", meta.idfVersion]);
  if (meta.chipId !== undefined) rows.push(["chip id", String(meta.chipId)]);
  rows.push(["signature", meta.signature ?? "none"]);
  await ctx.out(formatPairs(rows));
  return EXIT_OK;
}

async function imageRm(ctx: Context): Promise<number> {
  const meta = await removeImage(await ctx.catalog(), ctx.positionals[0]);
  if (ctx.json) {
    await ctx.out(JSON.stringify(meta, null, 2));
  } else {
    await ctx.out(
      escapeControl(`Removed ${meta.product}@${meta.version} (sha256 ${meta.sha256})`),
    );
  }
  return EXIT_OK;
}

function baseName(path: string): string {
  return path.split(/[\\/]/).pop() || path;
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}
