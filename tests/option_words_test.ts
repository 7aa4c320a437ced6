/**
 * `optionWords` (src/command/args.ts): a bare word naming an option means that option, so
 * `deno task bench fleet 10000` and `deno task bench --fleet 10000` are one command line.
 * @module
 */

import { assertEquals } from "./_assert.ts";
import { optionWords, parseCommandLine } from "../src/command/args.ts";

const OPTIONS = {
  fleet: { type: "string" },
  json: { type: "boolean" },
  only: { type: "string" },
} as const;

Deno.test("optionWords() turns a bare option name into the option, with its value", () => {
  assertEquals(optionWords(["fleet", "10000", "json"], OPTIONS), ["--fleet", "10000", "--json"]);
  assertEquals(optionWords(["--", "fleet", "100"], OPTIONS), ["--fleet", "100"]);
});

Deno.test("optionWords() leaves an option's value alone even when it names an option", () => {
  assertEquals(optionWords(["--only", "fleet", "json"], OPTIONS), ["--only", "fleet", "--json"]);
  assertEquals(optionWords(["only", "fleet"], OPTIONS), ["--only", "fleet"]);
});

Deno.test("optionWords() keeps unknown words and everything after a later -- for the parser", () => {
  assertEquals(optionWords(["constructor", "toString"], OPTIONS), ["constructor", "toString"]);
  assertEquals(optionWords(["json", "--", "fleet"], OPTIONS), ["--json", "--", "fleet"]);
});

Deno.test("a bare-word command line parses like the dashed one", () => {
  const bare = parseCommandLine(optionWords(["fleet", "1,10", "json"], OPTIONS), OPTIONS);
  const dashed = parseCommandLine(["--fleet", "1,10", "--json"], OPTIONS);
  assertEquals(bare.values, dashed.values);
});
