/**
 * One home for how things are printed: byte counts, rates and durations, the definition of a
 * transfer's rate, aligned tables that fit the terminal, and the escaping of text that comes
 * from devices. The CLI, the simulator, the demo, the sender and the benchmark all import it.
 * @module
 */

export * from "./bytes.ts";
export * from "./escape.ts";
export * from "./rate.ts";
export * from "./table.ts";
