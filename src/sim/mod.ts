/**
 * The receiver simulator: simulated ESP32 devices that speak protocol v1 (docs/protocol.md §8)
 * against a real broker and sender. `Receiver` is one device, `runDevices` runs many with
 * progress bars (the core of `deno task device`, the demo and the benchmark), `runFleet` runs
 * long-lived devices that follow rollouts (`deno task device -- --fleet N`).
 * @module
 */
export * from "./clock.ts";
export * from "./faulty_link.ts";
export * from "./faulty_sink.ts";
export * from "./flash_timing.ts";
export * from "./fleet.ts";
export * from "./fleet_device.ts";
export * from "./fleet_view.ts";
export * from "./limits.ts";
export * from "./progress.ts";
export * from "./receiver.ts";
export * from "./run_devices.ts";
export * from "./seeded.ts";
export * from "./sink.ts";
