/**
 * Progress output of the simulator: a live region of bars redrawn in place on a TTY (with `\r`
 * and cursor-up), plain periodic lines otherwise, and log lines printed above the bars without
 * tearing them. Every live line fits the terminal's width: a line that wraps would break the
 * cursor-up count and smear the bars. Rates follow the one definition in src/format/rate.ts.
 * Also the end-of-run summary table.
 * @module
 */

import {
  escapeControl,
  fitWidth,
  formatBytes,
  formatRate,
  formatTable,
  terminalColumns,
  TransferClock,
  transferRate,
} from "../format/mod.ts";
import type { ReceiverProgress, ReceiverResult } from "./receiver.ts";

/** Narrowest and widest bar, in characters between the brackets. */
const BAR_MIN = 8;
const BAR_MAX = 40;
/** Characters of a device id shown in a bar before it is cut. */
const ID_WIDTH = 14;
/** Devices drawn with a bar each; above this, one aggregate bar. */
export const MAX_DEVICE_BARS = 8;

/** A terminal (or log file) that log lines and a live region of progress lines share. */
export class Terminal {
  private live: string[] = [];

  /**
   * `write` gets raw text; `isTty` turns on redrawing in place; `columns` is the width live
   * lines are cut to (default: `COLUMNS`, else the console's width, else 80).
   */
  constructor(
    readonly write: (text: string) => void,
    readonly isTty: boolean,
    readonly columns: number = terminalColumns(),
  ) {}

  /** A terminal on stderr, redrawing when stderr is a TTY. */
  static stderr(): Terminal {
    const enc = new TextEncoder();
    return new Terminal((t) => Deno.stderr.writeSync(enc.encode(t)), Deno.stderr.isTerminal());
  }

  /** A terminal on stdout, redrawing when stdout is a TTY. */
  static stdout(): Terminal {
    const enc = new TextEncoder();
    return new Terminal((t) => Deno.stdout.writeSync(enc.encode(t)), Deno.stdout.isTerminal());
  }

  /** Width a live line may take: one less than the terminal, so the cursor never wraps. */
  get lineWidth(): number {
    return Math.max(1, this.columns - 1);
  }

  /** Prints a log line above the live region. */
  line(text: string): void {
    if (this.isTty && this.live.length > 0) {
      this.write(`${this.clearLive()}${text}\n${this.live.join("\n")}`);
    } else this.write(`${text}\n`);
  }

  /** Replaces the live region (TTY), or prints the lines once (not a TTY). */
  setLive(lines: string[]): void {
    if (!this.isTty) {
      for (const l of lines) this.write(`${l}\n`);
      return;
    }
    const clear = this.clearLive();
    this.live = lines.map((l) => fitWidth(l, this.lineWidth));
    this.write(`${clear}${this.live.join("\n")}`);
  }

  /** Leaves the live region on screen as ordinary lines. */
  endLive(): void {
    if (this.isTty && this.live.length > 0) this.write("\n");
    this.live = [];
  }

  /** Escape codes that move to the start of the live region and clear it to the end. */
  private clearLive(): string {
    if (this.live.length === 0) return "";
    const up = this.live.length > 1 ? `\x1b[${this.live.length - 1}A` : "";
    return `\r${up}\x1b[J`;
  }
}

/**
 * The progress of a set of devices, drawn on a {@link Terminal}: a bar per device on a TTY (up
 * to {@link MAX_DEVICE_BARS}), one aggregate bar for more, a plain line when not a TTY. Keeps a
 * {@link TransferClock} per device so the bar's rate is the transfer's rate by definition.
 */
export class ProgressBoard {
  private readonly clocks = new Map<string, TransferClock>();

  constructor(private readonly term: Terminal) {}

  /** Draws the devices' progress as of `nowMs` (milliseconds of one clock). */
  draw(all: ReceiverProgress[], nowMs: number): void {
    for (const p of all) this.observe(p, nowMs);
    const width = this.term.lineWidth;
    if (all.length <= MAX_DEVICE_BARS && this.term.isTty) {
      this.term.setLive(all.map((p) => deviceBar(p, this.clockOf(p).rate, width)));
    } else if (all.length <= MAX_DEVICE_BARS) {
      this.term.setLive([all.map((p) => `${escapeControl(p.deviceId)} ${percent(p)}`).join("  ")]);
    } else this.term.setLive([aggregateBar(all, this.aggregateRate(), width)]);
  }

  private observe(p: ReceiverProgress, nowMs: number): void {
    const clock = this.clockOf(p);
    if (p.size > 0) clock.manifest(nowMs);
    clock.acked(p.bytesWritten, nowMs);
    if (p.state === "DONE" || p.state === "FAILED" || p.state === "VERIFIED") clock.end(nowMs);
  }

  private clockOf(p: ReceiverProgress): TransferClock {
    let clock = this.clocks.get(p.deviceId);
    if (!clock) this.clocks.set(p.deviceId, clock = new TransferClock());
    return clock;
  }

  /** All devices together: their bytes over the longest of their intervals. */
  private aggregateRate(): number {
    const clocks = [...this.clocks.values()];
    const bytes = clocks.reduce((s, c) => s + c.bytesAcked, 0);
    return transferRate(bytes, Math.max(0, ...clocks.map((c) => c.seconds)));
  }
}

/**
 * One bar per device, cut to `width` characters, the bar itself taking what the text leaves:
 * `sim-1  [#####-----]  52%  512.0 KiB/1.00 MiB  12.3 MiB/s  RECEIVING`.
 */
export function deviceBar(p: ReceiverProgress, bytesPerSecond: number, width: number): string {
  const frac = p.size > 0 ? p.offset / p.size : 0;
  const id = fitWidth(escapeControl(p.deviceId), ID_WIDTH, "middle").padEnd(ID_WIDTH);
  const pct = `${(frac * 100).toFixed(0).padStart(3)}%`;
  const have = `${formatBytes(p.offset).padStart(9)}/${formatBytes(p.size).padEnd(9)}`;
  const tail = `${pct}  ${have}  ${formatRate(bytesPerSecond).padStart(11)}  ${p.state}`;
  return withBar(id, frac, tail, width);
}

/** One bar for many devices: devices done of total, bytes written, aggregate rate. */
export function aggregateBar(
  all: ReceiverProgress[],
  bytesPerSecond: number,
  width: number,
): string {
  const done = all.filter((p) => p.state === "DONE").length;
  const written = all.reduce((s, p) => s + p.bytesWritten, 0);
  const total = all.reduce((s, p) => s + p.size, 0);
  const have = all.reduce((s, p) => s + p.offset, 0);
  const frac = total > 0 ? have / total : 0;
  const tail = `${formatBytes(written)}  ${formatRate(bytesPerSecond)}`;
  return withBar(`devices ${done}/${all.length} done`, frac, tail, width);
}

/** `head [####----] tail`, the bar as wide as `width` allows, cut to `width` at worst. */
function withBar(head: string, frac: number, tail: string, width: number): string {
  const room = width - head.length - tail.length - 6; // two brackets and two double spaces
  const n = Math.min(BAR_MAX, room);
  if (n < BAR_MIN) return fitWidth(`${head}  ${tail}`, width);
  const filled = Math.max(0, Math.min(n, Math.round(frac * n)));
  return fitWidth(`${head}  [${"#".repeat(filled)}${"-".repeat(n - filled)}]  ${tail}`, width);
}

/** `42%`, `done`, or the state while the size is unknown. */
function percent(p: { offset: number; size: number; state: string }): string {
  if (p.state === "DONE") return "done";
  return p.size > 0 ? `${Math.floor((p.offset / p.size) * 100)}%` : p.state.toLowerCase();
}

/**
 * The summary table: device, status, bytes written, seconds, rate (by the one definition),
 * resends seen / duplicates, and the first 12 hex digits of the verified SHA-256.
 */
export function formatSummary(results: ReceiverResult[]): string {
  const table = formatTable(
    ["device", "status", "written", "seconds", "rate", "resends/dups", "sha256"],
    results.map((r) => [
      r.deviceId,
      r.status,
      formatBytes(r.bytesWritten),
      r.seconds.toFixed(2),
      formatRate(transferRate(r.bytesWritten, r.rateSeconds)),
      `${r.chunksReceived - r.chunks}/${r.duplicates}`,
      r.sha256 ? r.sha256.slice(0, 12) : "-",
    ]),
    { rule: true, right: [2, 3, 4] },
  );
  const lines = [table];
  const ok = results.filter((r) => r.ok).length;
  lines.push(`${ok}/${results.length} devices VERIFIED`);
  for (const r of results) {
    if (!r.ok && r.detail) lines.push(escapeControl(`${r.deviceId}: ${r.status}: ${r.detail}`));
  }
  return lines.join("\n");
}
