/**
 * Runs the deno binary as a user would (a task or a script) from the project root and collects
 * its exit code and output, for tests of whole commands.
 * @module
 */

import assert from "node:assert/strict";
import { runOta } from "../src/cli/ota.ts";

/** The project root. */
export const ROOT = new URL("..", import.meta.url).pathname;

/** Exit code and output of a finished command. */
export interface CommandRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `deno <args>` in the project with `env` added (colours off) and waits for it. */
export async function runDeno(
  args: string[],
  env: Record<string, string> = {},
): Promise<CommandRun> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

/**
 * Runs `deno task ota` in-process (`runOta`) with `args`, in `cwd`, with exactly `env` as its
 * environment, and collects what it printed.
 */
export async function runOtaIn(
  cwd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<CommandRun> {
  const out: string[] = [];
  const err: string[] = [];
  const decoder = new TextDecoder();
  const writer = (sink: string[]) => ({
    write(p: Uint8Array) {
      sink.push(decoder.decode(p));
      return p.length;
    },
  });
  const code = await runOta(args, { stdout: writer(out), stderr: writer(err), env, cwd });
  return { code, stdout: out.join(""), stderr: err.join("") };
}

/** The command failed with `code` and printed exactly one line, matching `pattern`, on stderr. */
export function assertOneErrorLine(r: CommandRun, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, r.stderr);
  assert.equal(r.stdout, "");
  assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
  assert.match(r.stderr, pattern);
}
