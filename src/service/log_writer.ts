/**
 * The sender's log on stdout, written in batches: a line is queued, and the queued lines go out
 * together in one write, at most one write in flight and the next only after it finished. A
 * synchronous write per line cost the sender at 10 000 devices 13–14 s of 79–98 s of busy time
 * and blocked its event loop whenever the reader of the pipe was behind (139 ms in one write;
 * docs/performance.md, "Ten thousand devices"). The queue is bounded: when the reader stays
 * behind, lines over the bound are dropped and one line says how many; info lines are dropped
 * before warnings. Shutdown flushes what is queued ({@link LogWriter.flush}).
 * @module
 */

/** Bound of the queued lines, in characters (UTF-16 code units, newlines included). */
export const MAX_LOG_QUEUE_CHARS = 1 << 20;
/**
 * Info lines are queued up to this much; the rest of {@link MAX_LOG_QUEUE_CHARS} is kept for
 * warnings, so that a flood of info lines does not drop them.
 */
export const MAX_INFO_QUEUE_CHARS = MAX_LOG_QUEUE_CHARS * 3 / 4;
/** How long a line waits in the queue for others to join its write. */
export const LOG_BATCH_MS = 10;
/** Room kept in the queue for the line that reports dropped lines (it is shorter). */
const DROP_REPORT_CHARS = 200;

/** Where a {@link LogWriter} writes; both calls may write part of `p` and return how much. */
export interface LogSink {
  write(p: Uint8Array): Promise<number>;
  writeSync(p: Uint8Array): number;
}

/** Settings of a {@link LogWriter}; the defaults are the constants above. */
export interface LogWriterOptions {
  maxChars?: number;
  maxInfoChars?: number;
  batchMs?: number;
  /** Time of the line that reports dropped lines. */
  now?: () => number;
}

/** `HH:MM:SS.mmm` (UTC) of `ms`, the time stamp of the sender's log lines. */
export function logTime(ms: number): string {
  return new Date(ms).toISOString().slice(11, 23);
}

/** A queue of log lines in front of a {@link LogSink}; see the module's description. */
export class LogWriter {
  #queue: string[] = [];
  #queuedChars = 0;
  #dropped = 0;
  #droppedWarnings = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #writing: Promise<void> | null = null;
  #encoder = new TextEncoder();
  readonly #maxChars: number;
  readonly #maxInfoChars: number;
  readonly #batchMs: number;
  readonly #now: () => number;

  constructor(readonly sink: LogSink, options: LogWriterOptions = {}) {
    this.#maxChars = options.maxChars ?? MAX_LOG_QUEUE_CHARS;
    this.#maxInfoChars = Math.min(options.maxInfoChars ?? MAX_INFO_QUEUE_CHARS, this.#maxChars);
    this.#batchMs = options.batchMs ?? LOG_BATCH_MS;
    this.#now = options.now ?? Date.now;
  }

  /** Queues an info line (no newline in it); dropped first when the queue is full. */
  info(line: string): void {
    this.#add(line, false);
  }

  /** Queues a warning (no newline in it). */
  warn(line: string): void {
    this.#add(line, true);
  }

  /** Characters queued and not yet handed to the sink. */
  get queuedChars(): number {
    return this.#queuedChars;
  }

  /** Lines dropped since the last line that reported drops was queued. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Writes everything queued, after the write in flight; resolves when all of it is written. */
  async flush(): Promise<void> {
    this.#clearTimer();
    while (this.#writing || this.#queue.length > 0 || this.#dropped > 0) {
      if (this.#writing) await this.#writing;
      else this.#startWrite();
    }
  }

  /**
   * Writes everything queued at once, synchronously: for an exit that cannot wait. A write in
   * flight cannot be waited for here; what is queued goes out after it is handed to the sink.
   */
  flushSync(): void {
    this.#clearTimer();
    const bytes = this.#takeBatch();
    if (bytes === null) return;
    try {
      for (let at = 0; at < bytes.length;) at += this.sink.writeSync(bytes.subarray(at));
    } catch {
      // stdout is gone: nobody is left to tell.
    }
  }

  #add(line: string, warning: boolean): void {
    const chars = line.length + 1;
    const reportChars = this.#dropped > 0 ? DROP_REPORT_CHARS : 0;
    const limit = warning ? this.#maxChars : this.#maxInfoChars;
    if (this.#queuedChars + reportChars + chars > limit) {
      this.#dropped++;
      if (warning) this.#droppedWarnings++;
      return;
    }
    if (reportChars > 0) this.#queueReport(this.#dropReport());
    this.#queue.push(line);
    this.#queuedChars += chars;
    this.#schedule();
  }

  #dropReport(): string {
    const warnings = this.#droppedWarnings > 0 ? ` (${this.#droppedWarnings} warnings)` : "";
    return `${logTime(this.#now())} log: ${this.#dropped} lines dropped${warnings}: ` +
      `stdout was read slower than the sender logged (queue bound ${this.#maxChars} characters)\n`;
  }

  #queueReport(report: string): void {
    this.#queue.push(report.slice(0, -1));
    this.#queuedChars += report.length;
    this.#dropped = 0;
    this.#droppedWarnings = 0;
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#writing) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#startWrite();
    }, this.#batchMs);
  }

  #clearTimer(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** The queued lines (and a report of drops after them) as one buffer; null when none. */
  #takeBatch(): Uint8Array | null {
    if (this.#dropped > 0) this.#queueReport(this.#dropReport());
    if (this.#queue.length === 0) return null;
    this.#queue.push("");
    const text = this.#queue.join("\n");
    this.#queue = [];
    this.#queuedChars = 0;
    return this.#encoder.encode(text);
  }

  #startWrite(): void {
    this.#clearTimer();
    const bytes = this.#takeBatch();
    if (bytes === null) return;
    this.#writing = (async () => {
      try {
        for (let at = 0; at < bytes.length;) at += await this.sink.write(bytes.subarray(at));
      } catch {
        // stdout is gone: nobody is left to tell.
      } finally {
        this.#writing = null;
        if (this.#queue.length > 0 || this.#dropped > 0) this.#schedule();
      }
    })();
  }
}

let stdoutWriter: LogWriter | undefined;

/**
 * The process's one writer on stdout (all its loggers share it, so their lines keep their
 * order); what is still queued when the process exits is written synchronously then.
 */
export function stdoutLog(): LogWriter {
  if (stdoutWriter) return stdoutWriter;
  const writer = new LogWriter({
    write: (p) => Deno.stdout.write(p),
    writeSync: (p) => Deno.stdout.writeSync(p),
  });
  globalThis.addEventListener("unload", () => writer.flushSync());
  stdoutWriter = writer;
  return writer;
}
