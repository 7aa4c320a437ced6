/**
 * Makes text from devices (ids, status details, versions) safe to print: a control character
 * could move the cursor, recolour the terminal or start a line that looks like a table row.
 * @module
 */

const ESCAPES: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e" };

// deno-lint-ignore no-control-regex -- these are exactly the characters to neutralise
const CONTROL = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/g;

/**
 * Replaces every control character (C0, DEL, C1, and the Unicode line and paragraph
 * separators) with a visible escape: `\n`, `\r`, `\t`, `\e`, or `\xNN` / `\uNNNN`. A backslash
 * is left as is, so ordinary paths and text read unchanged.
 */
export function escapeControl(text: string): string {
  return text.replace(CONTROL, (c) => {
    if (ESCAPES[c]) return ESCAPES[c];
    const code = c.charCodeAt(0);
    return code <= 0xff
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}
