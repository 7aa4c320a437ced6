/**
 * Runs the deno binary as a user would (a task or a script) from the project root and collects
 * its exit code and output, for tests of whole commands.
 * @module
 */

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
