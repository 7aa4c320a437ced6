/**
 * `deno task ota -- image add|list|show|rm`: the firmware images in the catalog.
 * @module
 */

import { CatalogError, type ImageMeta, parseSemver } from "../catalog/mod.ts";
import type { Catalog } from "../catalog/mod.ts";
import { escapeControl, formatBytes, formatPairs, formatTable } from "../format/mod.ts";
import { resolveFrom } from "../service/config.ts";
import { releaseImage } from "../ops/rollouts.ts";
import { RolloutError } from "../rollout/mod.ts";
import { EXIT_OK } from "../command/args.ts";
import { type Command, type Context, formatTime, ImageFileError, INVOKE } from "./_command.ts";

/** Characters of a SHA-256 shown in tables. */
export const SHORT_SHA_CHARS = 12;

const REF_HELP =
  "<ref> is a SHA-256, a unique SHA-256 prefix of at least 8 hex digits, or product@version.";

/** What a semantic version looks like, for the warning of `image add`. */
const SEMVER_HINT = "MAJOR.MINOR.PATCH such as 1.4.2, 2.0.0-rc.1 or v1.4.2";

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
                    see "${INVOKE} rollout create --help")

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

/** True when `version` is a semantic version, optionally with a leading `v`. */
export function isSemver(version: string): boolean {
  return parseSemver(version.replace(/^[vV](?=\d)/, "")) !== null;
}

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
  const catalog = await ctx.catalog({ create: true });
  const meta = await catalog.addImage(bytes, {
    name: (v.name as string | undefined) ?? baseName(file),
    product: v.product as string | undefined,
    version: v.version as string | undefined,
    generic: v.generic === true,
    signature: v.signature as string | undefined,
  });
  if (!isSemver(meta.version)) {
    await ctx.warn(
      `warning: version "${meta.version}" is not a semantic version (${SEMVER_HINT}); ` +
        `"latest" ranks it below every semantic version, so devices asking for latest may not get it`,
    );
  }
  const rollout = v.release === true ? await release(catalog, meta) : undefined;
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

/** Releases a just added image; a refusal says the image was stored all the same. */
async function release(catalog: Catalog, meta: ImageMeta) {
  try {
    return await releaseImage(catalog, meta);
  } catch (e) {
    if (!(e instanceof RolloutError)) throw e;
    throw new RolloutError(
      e.code,
      `Added ${meta.product}@${meta.version} (sha256 ${meta.sha256}) but did not release it: ` +
        e.message.replace(/^Cannot create rollout: /, ""),
    );
  }
}

async function imageList(ctx: Context): Promise<number> {
  const catalog = await ctx.catalog();
  const images = await catalog.list(ctx.values.product as string | undefined);
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
  const meta = await (await ctx.catalog()).remove(ctx.positionals[0]);
  if (ctx.json) {
    await ctx.out(JSON.stringify(meta, null, 2));
  } else {
    await ctx.out(
      escapeControl(`Removed ${meta.product}@${meta.version} (sha256 ${meta.sha256})`),
    );
  }
  return EXIT_OK;
}

async function findOrThrow(catalog: Catalog, ref: string, verb: string): Promise<ImageMeta> {
  const meta = await catalog.find(ref);
  if (!meta) throw new CatalogError("NOT_FOUND", `Cannot ${verb} image: no image matches "${ref}"`);
  return meta;
}

function baseName(path: string): string {
  return path.split(/[\\/]/).pop() || path;
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}
