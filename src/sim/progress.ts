/**
 * Progress output of the simulator: a live region of bars redrawn in place on a TTY (with `\r`
 * and cursor-up), plain periodic lines otherwise, and log lines printed above the bars without
 * tearing them. Also the end-of-run summary table.
 * @module
 */

import type { ReceiverProgress, ReceiverResult } from "./receiver.ts";

const MiB = 1024 * 1024;
const BAR_WIDTH = 24;

/** A terminal (or log file) that log lines and a live region of progress lines share. */
export class Terminal {
  private live: string[] = [];

  /** `write` gets raw text; `isTty` turns on redrawing in place. */
  constructor(
    readonly write: (text: string) => void,
    readonly isTty: boolean,
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
    this.live = lines;
    this.write(`${clear}${lines.join("\n")}`);
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

/** One bar per device: `sim-1 [#####-----]  52%  0.50/1.00 MiB  12.3 MiB/s  RECEIVING`. */
export function deviceBar(p: ReceiverProgress, seconds: number): string {
  const frac = p.size > 0 ? p.offset / p.size : 0;
  const rate = seconds > 0 ? p.bytesWritten / MiB / seconds : 0;
  return `${p.deviceId.padEnd(12)} ${bar(frac)} ${(frac * 100).toFixed(0).padStart(3)}%  ` +
    `${(p.offset / MiB).toFixed(2)}/${(p.size / MiB).toFixed(2)} MiB  ${
      rate.toFixed(1).padStart(6)
    } MiB/s  ${p.state}`;
}

/** One bar for many devices: devices done of total, MiB written, aggregate MiB/s. */
export function aggregateBar(all: ReceiverProgress[], seconds: number): string {
  const done = all.filter((p) => p.state === "DONE").length;
  const written = all.reduce((s, p) => s + p.bytesWritten, 0);
  const total = all.reduce((s, p) => s + p.size, 0);
  const have = all.reduce((s, p) => s + p.offset, 0);
  const frac = total > 0 ? have / total : 0;
  const rate = seconds > 0 ? written / MiB / seconds : 0;
  return `devices ${done}/${all.length} done ${bar(frac)} ${(written / MiB).toFixed(2)} MiB  ` +
    `${rate.toFixed(1)} MiB/s`;
}

function bar(frac: number): string {
  const n = Math.max(0, Math.min(BAR_WIDTH, Math.round(frac * BAR_WIDTH)));
  return `[${"#".repeat(n)}${"-".repeat(BAR_WIDTH - n)}]`;
}

/**
 * The summary table: device, status, MiB, seconds, MiB/s, resends seen / duplicates, and the
 * first 12 hex digits of the verified SHA-256.
 */
export function formatSummary(results: ReceiverResult[]): string {
  const head = ["device", "status", "MiB", "seconds", "MiB/s", "resends/dups", "sha256"];
  const rows = results.map((r) => [
    r.deviceId,
    r.status,
    (r.bytesWritten / MiB).toFixed(2),
    r.seconds.toFixed(2),
    r.mibPerSecond.toFixed(2),
    `${r.chunksReceived - r.chunks}/${r.duplicates}`,
    r.sha256 ? r.sha256.slice(0, 12) : "-",
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const fmt = (row: string[]) => row.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  const lines = [fmt(head), fmt(widths.map((w) => "-".repeat(w))), ...rows.map(fmt)];
  const ok = results.filter((r) => r.ok).length;
  lines.push(`${ok}/${results.length} devices VERIFIED`);
  for (const r of results) {
    if (!r.ok && r.detail) lines.push(`${r.deviceId}: ${r.status}: ${r.detail}`);
  }
  return lines.join("\n");
}
