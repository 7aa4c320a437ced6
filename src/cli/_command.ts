/**
 * What every `deno task ota` command is given and declares: the parsed command line, the output
 * stream, and the catalog, opened lazily so that `--help` and usage errors never touch it.
 * @module
 */

import type { ParseArgsOptionsConfig } from "node:util";
import type { Catalog } from "../catalog/mod.ts";

/** How commands are invoked, for help texts and hints. */
export const INVOKE = "deno task ota --";

/** What a command's `run` receives. */
export interface Context {
  /** Option values. */
  values: Record<string, string | boolean | undefined>;
  /** Positional arguments after the command words. */
  positionals: string[];
  /** `--json` was given. */
  json: boolean;
  /** Folder relative file arguments are resolved against. */
  cwd: string;
  /** Writes a result (a newline is added). */
  out: (text: string) => Promise<void>;
  /** Writes a warning line on stderr (escaped, prefixed with the command). */
  warn: (text: string) => Promise<void>;
  /**
   * The catalog. It must exist unless `create` is set (only `image add` creates one): a typo in
   * `--kv` must not create an empty catalog somewhere.
   */
  catalog: (options?: { create?: boolean }) => Promise<Catalog>;
}

/** One command: its words, positional arguments, help and options, and what it does. */
export interface Command {
  words: string[];
  args: string[];
  summary: string;
  help: string;
  options: ParseArgsOptionsConfig;
  run: (ctx: Context) => Promise<number>;
}

/** The file given to `image add` could not be read. */
export class ImageFileError extends Error {
  /** Stable reason. */
  readonly code = "IMAGE_FILE_UNREADABLE";

  constructor(message: string) {
    super(message);
    this.name = "ImageFileError";
  }
}

/** The catalog named by `--kv`, `OTA_KV_PATH` or `kvPath` does not exist. */
export class MissingCatalogError extends Error {
  /** Stable reason. */
  readonly code = "CATALOG_MISSING";

  constructor(readonly kvPath: string) {
    super(`Cannot open catalog "${kvPath}": no such file`);
    this.name = "MissingCatalogError";
  }
}

/** ISO time as `2025-01-01 00:00:02` for tables. */
export function formatTime(iso: string): string {
  return iso.replace("T", " ").slice(0, 19);
}
