/**
 * The sender: service, transfer state machine, configuration, and `runSender` which
 * wires them to a broker and a catalog the way `deno task sender` does.
 * @module
 */
export * from "./config.ts";
export * from "./run.ts";
export * from "./sender.ts";
export * from "./transfer.ts";
