/**
 * Fleet rollouts: the pure rules (wave membership, the device lifecycle, the rollout state
 * machine, spec validation, the `latest` decision) and the KV store that keeps rollouts and
 * their device counters. The model is described in docs/rollouts.md.
 *
 * ```ts
 * const spec = parseRolloutSpec({ image: "blink@1.1.0", waves: "10,50,100" }, image);
 * const store = new RolloutStore(kv);
 * const rollout = await store.create(spec, { start: true });
 * const decision = decideLatest(holdingRollout(await store.list(), device), device, null);
 * ```
 *
 * @module
 */

export * from "./decide.ts";
export * from "./device_lifecycle.ts";
export * from "./duration.ts";
export * from "./errors.ts";
export * from "./limits.ts";
export * from "./membership.ts";
export * from "./rollout_state.ts";
export * from "./spec.ts";
export * from "./store.ts";
export * from "./summary.ts";
export * from "./target.ts";
export * from "./active_rollouts.ts";
