/**
 * The sender: the service that answers REQUESTs and the transfer state machine.
 * @module
 */
export * from "./sender.ts";
export * from "./transfer.ts";
