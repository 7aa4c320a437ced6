/**
 * The command-line conventions every `deno task` command shares: `deno task X -- args` and
 * `deno task X args` mean the same (Deno passes the `--` on), options are parsed strictly, and a
 * command line that cannot be understood gets one line saying what is wrong and which `--help`
 * explains it, with exit code {@linkcode EXIT_USAGE}.
 * @module
 */

import { parseArgs, type ParseArgsOptionsConfig } from "node:util";

/** Exit code of a successful command. */
export const EXIT_OK = 0;
/** Exit code of a command that failed. */
export const EXIT_FAILURE = 1;
/** Exit code of a command line that could not be understood. */
export const EXIT_USAGE = 2;

/** A command line that could not be understood; exits with {@linkcode EXIT_USAGE}. */
export class UsageError extends Error {
  /** Stable reason. */
  readonly code = "USAGE";
  /** Words after the task name whose `--help` explains the right usage, e.g. `["image"]`. */
  readonly helpFor: string[];

  constructor(message: string, helpFor: string[] = []) {
    super(message);
    this.name = "UsageError";
    this.helpFor = helpFor;
  }
}

/**
 * The arguments without the `--` that `deno task X -- args` passes on, so that both forms of a
 * command line mean the same. Only a leading `--` is dropped; a later one keeps its meaning.
 */
export function taskArgs(args: readonly string[]): string[] {
  return args[0] === "--" ? args.slice(1) : [...args];
}

/**
 * The arguments with each bare word that names one of `options` turned into that option, so
 * `deno task bench fleet 10000` means `deno task bench --fleet 10000`. Only words before a `--`
 * of their own (after the one {@link taskArgs} drops) and not taken as an option's value are
 * turned; anything else stays as it was for the parser to judge.
 */
export function optionWords(args: readonly string[], options: ParseArgsOptionsConfig): string[] {
  const out: string[] = [];
  const rest = taskArgs(args);
  for (let i = 0; i < rest.length; i++) {
    const word = rest[i];
    if (word === "--") return [...out, ...rest.slice(i)];
    const option = !word.startsWith("-") && Object.hasOwn(options, word) ? options[word] : null;
    if (option) {
      out.push(`--${word}`);
      if (option.type === "string" && i + 1 < rest.length) out.push(rest[++i]);
    } else {
      out.push(word);
      const name = word.slice(2);
      const named = word.startsWith("--") && Object.hasOwn(options, name) ? options[name] : null;
      if (named?.type === "string" && i + 1 < rest.length) {
        out.push(rest[++i]);
      }
    }
  }
  return out;
}

/** What {@link parseCommandLine} returns: option values and positional arguments. */
export interface CommandLine {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/**
 * Parses `args` (with or without the leading `--`) against `options`, strictly: an unknown
 * option, a missing value, or a positional argument where none is allowed throws a
 * {@link UsageError} naming it. `helpFor` names the subcommand whose help the error points at.
 */
export function parseCommandLine(
  args: readonly string[],
  options: ParseArgsOptionsConfig,
  settings: { positionals?: boolean; strict?: boolean; helpFor?: string[] } = {},
): CommandLine {
  try {
    const parsed = parseArgs({
      args: taskArgs(args),
      options,
      strict: settings.strict ?? true,
      allowPositionals: settings.positionals ?? false,
    });
    return {
      values: parsed.values as CommandLine["values"],
      positionals: parsed.positionals,
    };
  } catch (e) {
    throw new UsageError(describeParseError(e), settings.helpFor);
  }
}

/** Turns a `node:util` parseArgs error into a short clause, e.g. `unknown option "--x"`. */
export function describeParseError(e: unknown): string {
  const code = (e as { code?: string }).code;
  const message = e instanceof Error ? e.message : String(e);
  const option = /'(-[^' ]+)/.exec(message)?.[1];
  const positional = /Unexpected argument '([^']*)'/.exec(message)?.[1];
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") return `unknown option "${option}"`;
  if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
    return `unexpected argument "${positional ?? "?"}"`;
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    return /does not take an argument/.test(message)
      ? `option "${option}" takes no value`
      : `option "${option}" needs a value`;
  }
  return message.split("\n")[0];
}

/**
 * Reads a whole-number option: `undefined` stays `undefined`; anything but a whole number from
 * `min` to `max` throws a {@link UsageError} naming the option, the value and the range, whose
 * `--help` pointer is `helpFor`.
 */
export function intOption(
  text: string | boolean | undefined,
  name: string,
  range: { min: number; max?: number; helpFor?: string[] },
): number | undefined {
  if (text === undefined) return undefined;
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  const n = Number(text);
  if (typeof text !== "string" || !/^\d+$/.test(text) || n < range.min || n > max) {
    throw new UsageError(
      `option "${name}" is "${text}", expected a whole number from ${range.min} to ${max}`,
      range.helpFor,
    );
  }
  return n;
}

/** The help command that explains `task`, e.g. `deno task ota -- image add --help`. */
export function helpCommand(task: string, words: string[] = []): string {
  return ["deno task", task, "--", ...words, "--help"].join(" ");
}

/**
 * The one line printed for a usage error: `deno task sender: unknown option "--x"; run "deno
 * task sender -- --help" for usage`.
 */
export function usageLine(task: string, err: UsageError, words: string[] = []): string {
  const prefix = ["deno task", task, ...words].join(" ");
  return `${prefix}: ${err.message}; run "${helpCommand(task, err.helpFor)}" for usage`;
}

/** Prints {@link usageLine} on stderr and returns {@linkcode EXIT_USAGE}. */
export function reportUsage(task: string, err: UsageError): number {
  console.error(usageLine(task, err));
  return EXIT_USAGE;
}
