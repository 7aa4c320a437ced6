/**
 * What a fleet looks like on a terminal: a few live lines (devices per phase, per running
 * version, the outcomes so far) that fit the terminal's width, and the summary table at the end.
 * Pure functions of {@link FleetCounts} and snapshots; drawing is the {@link Terminal}'s.
 * @module
 */

import { formatBytes, formatDuration, formatTable } from "../format/mod.ts";
import type { FleetCounts } from "./fleet.ts";
import { FLEET_PHASES, type FleetDeviceSnapshot } from "./fleet_device.ts";

/** The live lines of a fleet `seconds` into the run (the Terminal cuts them to its width). */
export function fleetLines(c: FleetCounts, seconds: number): string[] {
  const phases = FLEET_PHASES.filter((p) => c.phases[p] > 0)
    .map((p) => `${p.toLowerCase()} ${c.phases[p]}`).join("  ");
  return [
    `fleet ${c.devices} devices  ${formatDuration(seconds)}  versions ${versionList(c)}`,
    `  now: ${phases || "-"}${
      c.phases.DOWNLOADING > 0 ? `  (${formatBytes(c.bytesInFlight)} in flight)` : ""
    }`,
    `  updated ${c.updated}  rolled back ${c.rolledBack}  download failures ${c.downloadFailures}` +
    `  offers taken ${c.offers}  requests ${c.requests}`,
  ];
}

/** `1.0.0 ×12  1.1.0 ×8`, versions in sorted order. */
export function versionList(c: FleetCounts): string {
  return Object.keys(c.versions).sort().map((v) => `${v} ×${c.versions[v]}`).join("  ");
}

/** The summary at the end: one row per running version and last outcome, then the totals. */
export function formatFleetSummary(snapshots: readonly FleetDeviceSnapshot[]): string {
  const groups = new Map<string, { version: string; outcome: string; devices: string[] }>();
  for (const s of snapshots) {
    const outcome = s.lastOutcome || "NO UPDATE";
    const key = `${s.version}\u0000${outcome}`;
    const g = groups.get(key) ?? { version: s.version, outcome, devices: [] };
    g.devices.push(s.deviceId);
    groups.set(key, g);
  }
  const rows = [...groups.values()]
    .sort((a, b) => a.version.localeCompare(b.version) || a.outcome.localeCompare(b.outcome))
    .map((g) => [g.version, g.outcome, g.devices.length, sample(g.devices)]);
  const table = formatTable(["version", "last update", "devices", "examples"], rows, {
    rule: true,
    right: [2],
  });
  const sum = (f: (s: FleetDeviceSnapshot) => number) => snapshots.reduce((n, s) => n + f(s), 0);
  return `${table}\n${snapshots.length} devices: ${sum((s) => s.updates)} updates booted, ` +
    `${sum((s) => s.rollbacks)} rolled back, ${sum((s) => s.downloadFailures)} failed downloads, ` +
    `${sum((s) => s.requests)} requests`;
}

/** Up to three ids, then how many more. */
function sample(ids: string[]): string {
  const shown = ids.slice(0, 3).join(", ");
  return ids.length > 3 ? `${shown}, +${ids.length - 3}` : shown;
}

/** How often the live view is redrawn on a TTY, and printed when the output is not one. */
export const FLEET_VIEW_TTY_MS = 200;
export const FLEET_VIEW_PLAIN_MS = 2000;

/** What the live view needs: counts now, and a place to draw. */
export interface FleetViewSource {
  counts(): FleetCounts;
}

/**
 * Draws `fleet`'s live lines on `term` until the returned function is called (which draws them
 * a last time and leaves them on screen). `extra` adds lines under them (the demo's waves).
 */
export function showFleet(
  fleet: FleetViewSource,
  term: { isTty: boolean; setLive(lines: string[]): void; endLive(): void },
  extra: () => string[] = () => [],
): () => void {
  const started = performance.now();
  const draw = () =>
    term.setLive([...fleetLines(fleet.counts(), (performance.now() - started) / 1000), ...extra()]);
  const timer = setInterval(draw, term.isTty ? FLEET_VIEW_TTY_MS : FLEET_VIEW_PLAIN_MS);
  return () => {
    clearInterval(timer);
    draw();
    term.endLive();
  };
}
