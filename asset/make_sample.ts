/**
 * Writes a deterministic ESP32-style sample app image (see `src/catalog/sample_image.ts`).
 *
 * ```sh
 * deno run --allow-write asset/make_sample.ts                       # asset/blink-1.1.0.bin
 * deno run --allow-write asset/make_sample.ts --version 1.2.0 --size 1048576 --out /tmp/b.bin
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { DEFAULT_SAMPLE_IMAGE_BYTES, makeSampleImage } from "../src/catalog/sample_image.ts";

const USAGE = `Usage: deno run --allow-write asset/make_sample.ts [options]

Writes a deterministic ESP32-style sample app image (a sample, not a bootable build).

Options:
  --product P   project name in the app descriptor (default blink)
  --version V   version in the app descriptor (default 1.1.0)
  --size N      image size in bytes (default ${DEFAULT_SAMPLE_IMAGE_BYTES})
  --seed N      filler seed (default 1)
  --out PATH    output file (default asset/<product>-<version>.bin)`;

/** Parses the command line, writes the image and returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      product: { type: "string", default: "blink" },
      version: { type: "string", default: "1.1.0" },
      size: { type: "string", default: String(DEFAULT_SAMPLE_IMAGE_BYTES) },
      seed: { type: "string", default: "1" },
      out: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const size = Number(values.size);
  const seed = Number(values.seed);
  const bytes = makeSampleImage({ product: values.product, version: values.version, size, seed });
  const out = values.out ??
    new URL(`./${values.product}-${values.version}.bin`, import.meta.url).pathname;
  await Deno.writeFile(out, bytes);
  console.log(`Wrote ${out} (${bytes.length} bytes)`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
