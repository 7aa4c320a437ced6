/**
 * Aligned text tables and lines that fit the terminal, for every command's output.
 * @module
 */

import { escapeControl } from "./escape.ts";

/** Columns assumed when neither `COLUMNS` nor the terminal says. */
export const DEFAULT_COLUMNS = 80;
/** Narrowest width honoured; below it lines are cut at this width. */
export const MIN_COLUMNS = 20;

/** How {@link formatTable} lays out columns. */
export interface TableOptions {
  /** Indexes of right-aligned columns (numbers and sizes). */
  right?: number[];
  /** Text before every line, e.g. two spaces. */
  indent?: string;
  /** Add a line of dashes under the header. */
  rule?: boolean;
}

/**
 * Lays rows out as an aligned table under a header, two spaces between columns, trailing spaces
 * trimmed. Every cell goes through {@link escapeControl}, so a cell can never start a new row.
 */
export function formatTable(
  header: string[],
  rows: ReadonlyArray<ReadonlyArray<string | number>>,
  options: TableOptions = {},
): string {
  const cells = rows.map((r) => header.map((_, i) => escapeControl(String(r[i] ?? ""))));
  const head = header.map(escapeControl);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i].length)));
  const right = new Set(options.right ?? []);
  const indent = options.indent ?? "";
  const line = (row: string[]) =>
    (indent + row.map((c, i) => right.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))
      .join("  ")).trimEnd();
  const lines = [line(head)];
  if (options.rule) lines.push(line(widths.map((w) => "-".repeat(w))));
  return [...lines, ...cells.map(line)].join("\n");
}

/** Lays `[key, value]` pairs out as two aligned columns (`image show`); values are escaped. */
export function formatPairs(pairs: ReadonlyArray<readonly [string, string]>): string {
  const width = Math.max(0, ...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${escapeControl(v)}`.trimEnd()).join("\n");
}

/**
 * The terminal's width in columns: `COLUMNS` when it is set to a number, else the size of the
 * console, else {@link DEFAULT_COLUMNS}.
 */
export function terminalColumns(env: (name: string) => string | undefined = envGet): number {
  const fromEnv = Number(env("COLUMNS"));
  if (Number.isInteger(fromEnv) && fromEnv > 0) return Math.max(MIN_COLUMNS, fromEnv);
  try {
    return Math.max(MIN_COLUMNS, Deno.consoleSize().columns);
  } catch {
    return DEFAULT_COLUMNS;
  }
}

/**
 * Cuts `text` to at most `width` characters with a `…` where text was left out: at the end, or
 * in the middle (`"middle"`, for names that differ in their tails, such as `sim-1`/`sim-2`).
 */
export function fitWidth(text: string, width: number, cut: "end" | "middle" = "end"): string {
  if (text.length <= width) return text;
  if (width <= 1) return text.slice(0, Math.max(0, width));
  if (cut === "end") return `${text.slice(0, width - 1)}…`;
  const tail = Math.floor((width - 1) / 2);
  return `${text.slice(0, width - 1 - tail)}…${text.slice(text.length - tail)}`;
}

function envGet(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}
