/**
 * How a broker outage is reported: the loss once, then "still unreachable" at growing
 * intervals, then "reconnected after N s". MQTT.js retries every `reconnectMs` and emits an
 * error each time; logging each of them filled the sender's log with a line per second and
 * never said when the broker came back.
 * @module
 */

import { formatDuration } from "../format/mod.ts";

/** Seconds into an outage at which it is reported again; after the last, every last seconds. */
export const OUTAGE_REPORT_SECONDS: readonly number[] = [10, 30, 60, 120, 300, 600];

/**
 * Turns connection events into the few lines worth logging. Feed it {@link lost} on every
 * "offline", "close" or "error" while disconnected and {@link connected} on every "connect";
 * it calls `report` with a line only when one is due. `now` is milliseconds.
 */
export class OutageReporter {
  private downSince: number | undefined;
  private nextReport = 0;
  private lastDetail = "";

  constructor(
    private readonly report: (line: string) => void,
    private readonly options: { reconnectMs: number; reportSeconds?: readonly number[] },
  ) {}

  /** The connection is down (or a reconnect attempt failed, with `detail` saying why). */
  lost(now: number, detail?: string): void {
    if (detail) this.lastDetail = detail;
    if (this.downSince === undefined) {
      this.downSince = now;
      this.nextReport = 0;
      this.report(
        `broker connection lost${detail ? ` (${detail})` : ""}; reconnecting every ` +
          `${formatDuration(this.options.reconnectMs / 1000)}`,
      );
      return;
    }
    const seconds = (now - this.downSince) / 1000;
    const due = this.dueAt(this.nextReport);
    if (seconds >= due) {
      this.nextReport++;
      this.report(
        `broker still unreachable after ${Math.round(due)} s` +
          (this.lastDetail ? ` (${this.lastDetail})` : "") + "; still trying",
      );
    }
  }

  /** The connection is up; reports how long the outage lasted, if there was one. */
  connected(now: number): void {
    if (this.downSince === undefined) return;
    const seconds = (now - this.downSince) / 1000;
    this.downSince = undefined;
    this.lastDetail = "";
    this.report(`broker reconnected after ${formatDuration(seconds)}`);
  }

  /** True while an outage is open. */
  get down(): boolean {
    return this.downSince !== undefined;
  }

  private dueAt(index: number): number {
    const steps = this.options.reportSeconds ?? OUTAGE_REPORT_SECONDS;
    if (index < steps.length) return steps[index];
    const last = steps[steps.length - 1];
    return last * (index - steps.length + 2);
  }
}
