/**
 * The sender as a service: its configuration (file, environment, command line) and `runSender`,
 * which wires the sender, the catalog, the broker connection and the HTTP server together the
 * way `deno task sender` does.
 * @module
 */
export * from "./config.ts";
export * from "./run.ts";
