/**
 * `deno task ota -- key generate`: an ECDSA P-256 key pair for signing manifests.
 * @module
 */

import { join } from "node:path";
import { generateSigningKeys } from "../protocol/signing.ts";
import { resolveFrom } from "../service/config.ts";
import { EXIT_OK } from "../command/args.ts";
import type { Command, Context } from "./_command.ts";

/** Folder `key generate` writes to when no `--out` is given. */
export const DEFAULT_KEY_DIR = ".data/keys";

/** The `key` commands. */
export const KEY_COMMANDS: Command[] = [
  {
    words: ["key", "generate"],
    args: [],
    summary: "make an ECDSA P-256 key pair for signing manifests",
    help: `Options:
  --out DIR     folder for signing_key.pem (sender) and signing_pub.pem (devices); default ${DEFAULT_KEY_DIR}

Point the sender's signing.keyFile (OTA_SIGNING_KEY_FILE) at signing_key.pem and build the
firmware with signing_pub.pem: devices then refuse images whose signature does not verify.
Existing files are never overwritten.`,
    options: { out: { type: "string" } },
    run: keyGenerate,
  },
];

async function keyGenerate(ctx: Context): Promise<number> {
  const dir = resolveFrom(ctx.cwd, (ctx.values.out as string | undefined) ?? DEFAULT_KEY_DIR);
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
