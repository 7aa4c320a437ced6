/**
 * File descriptors a fleet run needs, checked before it starts. Every simulated device holds one
 * MQTT connection: Mosquitto holds one descriptor per device, each device worker process one per
 * device it runs. Deno raises its own soft limit to the hard one at start and child processes
 * (Mosquitto, the sender, the workers) inherit it, so what bounds a run is the limit of this
 * process; a run that would hit it stops first and says how to raise it.
 * @module
 */

/** Descriptors a process needs beyond its MQTT connections: stdio, files, pipes, the runtime. */
export const FD_MARGIN = 256;

/** The open-files limit of a process. */
export interface FdLimits {
  soft: number;
  hard: number;
}

/** The open-files limit of a process (`"self"`: this one) from /proc; Infinity for unlimited. */
export function fdLimits(pid: number | "self" = "self"): FdLimits {
  const text = Deno.readTextFileSync(`/proc/${pid}/limits`);
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  const value = (
    s: string | undefined,
  ) => (s === undefined || s === "unlimited" ? Infinity : Number(s));
  return { soft: value(m?.[1]), hard: value(m?.[2]) };
}

/** Descriptors the busiest process of a fleet run needs: Mosquitto, with one per device. */
export function fleetFdNeed(devices: number): number {
  return devices + FD_MARGIN;
}

/**
 * Why this process's open-files limit cannot hold a fleet of `devices` (Mosquitto holds one
 * descriptor per device and inherits this limit), with what to do; null when it can.
 */
export function fleetFdProblem(devices: number, limits: FdLimits = fdLimits()): string | null {
  const need = fleetFdNeed(devices);
  if (limits.soft >= need) return null;
  return `a fleet of ${devices} devices needs ${need} open files in Mosquitto, and the limit ` +
    `here is ${limits.soft} (hard ${limits.hard}); raise the hard limit before running, e.g. ` +
    `"ulimit -Hn 65536 && ulimit -n 65536" as root, or LimitNOFILE=65536 in a systemd unit`;
}
