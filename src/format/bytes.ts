/**
 * Human-readable quantities: byte counts, rates and durations, in one style for the CLI, the
 * simulator, the sender's log and the benchmark (binary units, as flash sizes are).
 * @module
 */

/** Bytes in a KiB. */
export const KiB = 1024;
/** Bytes in a MiB. */
export const MiB = 1024 * 1024;

/** Formats a byte count as `512 B`, `256.0 KiB` or `1.00 MiB`. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return "-";
  if (Math.abs(bytes) < KiB) return `${Math.round(bytes)} B`;
  if (Math.abs(bytes) < MiB) return `${(bytes / KiB).toFixed(1)} KiB`;
  return `${(bytes / MiB).toFixed(2)} MiB`;
}

/** Formats a rate in bytes per second as `128.0 KiB/s`; `-` when there is none (NaN). */
export function formatRate(bytesPerSecond: number): string {
  return Number.isFinite(bytesPerSecond) ? `${formatBytes(bytesPerSecond)}/s` : "-";
}

/** Formats seconds as `0.42 s`, `12.3 s`, `4 min 05 s` or `2 h 03 min`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "-";
  if (seconds < 10) return `${seconds.toFixed(2)} s`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}
