/**
 * Brokers the project starts itself: Mosquitto (tests, demo, benchmarks) and the embedded aedes.
 * @module
 */
export * from "./embedded.ts";
export * from "./mosquitto.ts";
export * from "./ports.ts";
