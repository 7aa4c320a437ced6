/**
 * CPU time of a whole process to the microsecond, for figures too small for the 10 ms clock ticks
 * of /proc/{pid}/stat: one 1 MiB transfer costs the sender a few ms.
 *
 * Linux keeps each thread's exact run time in /proc/{pid}/task/{tid}/schedstat (nanoseconds on
 * the CPU). A reading sums its threads; the difference of two readings counts every thread that
 * was there at the first one and every thread started since. A thread that ended in between
 * takes its time with it, so then the difference falls back to the (complete but coarse) clock
 * ticks of /proc/{pid}/stat rather than undercount.
 * @module
 */

const CLOCK_TICKS = 100; // sysconf(_SC_CLK_TCK) on Linux

/** One reading of a process's CPU clock. */
export interface CpuReading {
  /** Run time of each thread in nanoseconds, by thread id. */
  threads: Map<number, number>;
  /** Name of each thread (`/proc/{pid}/task/{tid}/comm`), by thread id. */
  names?: Map<number, string>;
  /** User + system time of the process and its ended threads, in 10 ms ticks, as seconds. */
  tickSeconds: number;
}

/** Reads the CPU clock of a process (`"self"`: this one). */
export function readCpu(pid: number | "self"): CpuReading {
  const threads = new Map<number, number>();
  const names = new Map<number, string>();
  for (const entry of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      const text = Deno.readTextFileSync(`/proc/${pid}/task/${entry.name}/schedstat`);
      threads.set(Number(entry.name), Number(text.split(" ")[0]));
      names.set(
        Number(entry.name),
        Deno.readTextFileSync(`/proc/${pid}/task/${entry.name}/comm`).trim(),
      );
    } catch {
      // The thread ended while we listed them: it is simply not in this reading.
    }
  }
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { threads, names, tickSeconds: (Number(rest[11]) + Number(rest[12])) / CLOCK_TICKS };
}

/**
 * CPU seconds between two readings by thread name, e.g. the sender's main thread (`deno`) apart
 * from its KV thread and V8's helper threads; threads that ended in between are not counted.
 */
export function cpuSecondsByThread(before: CpuReading, after: CpuReading): Map<string, number> {
  const out = new Map<string, number>();
  for (const [tid, t1] of after.threads) {
    const name = after.names?.get(tid) ?? "?";
    const ns = t1 - (before.threads.get(tid) ?? 0);
    out.set(name, (out.get(name) ?? 0) + ns / 1e9);
  }
  return out;
}

/** CPU seconds a process spent between two readings (see the module comment for precision). */
export function cpuSecondsBetween(before: CpuReading, after: CpuReading): number {
  let ns = 0;
  for (const [tid, t0] of before.threads) {
    const t1 = after.threads.get(tid);
    if (t1 === undefined) return after.tickSeconds - before.tickSeconds;
    ns += t1 - t0;
  }
  for (const [tid, t1] of after.threads) if (!before.threads.has(tid)) ns += t1;
  return ns / 1e9;
}
