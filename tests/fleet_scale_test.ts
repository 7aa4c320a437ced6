/**
 * The scale run's rules (bench/fleet_scale.ts, bench/fd_limit.ts): which runs are scale runs, how
 * they are laid out, the descriptor check before they start, and the targets' verdicts.
 * @module
 */

import { assert, assertEquals } from "./_assert.ts";
import {
  checkFleetTargets,
  type FleetFigures,
  SCALE_BASELINE_DEVICES,
  SCALE_IMAGE_BYTES,
  scaleFleetPlan,
  scaleWorkers,
} from "../bench/fleet_scale.ts";
import { FD_MARGIN, fdLimits, fleetFdProblem } from "../bench/fd_limit.ts";

Deno.test("a fleet of 10 000 is a scale run with the 100-device baseline and the 256 KiB image", () => {
  assertEquals(scaleFleetPlan([10000]), {
    sizes: [SCALE_BASELINE_DEVICES, 10000],
    imageBytes: SCALE_IMAGE_BYTES,
  });
  assertEquals(scaleFleetPlan([1000, 100, 10000])?.sizes, [100, 1000, 10000]);
  assertEquals(scaleFleetPlan([1, 10, 100, 1000]), null, "the usual fleets are no scale run");
});

Deno.test("a scale run uses one device worker per 2 500 devices, at least the minimum", () => {
  assertEquals(scaleWorkers(10000, 2), 4);
  assertEquals(scaleWorkers(3000, 2), 2);
  assertEquals(scaleWorkers(100, 2), 2);
});

Deno.test("fleetFdProblem() says what to raise when Mosquitto could not hold every device", () => {
  assertEquals(fleetFdProblem(10000, { soft: 20000, hard: 20000 }), null);
  const problem = fleetFdProblem(30000, { soft: 20000, hard: 20000 });
  assert(problem?.includes(`needs ${30000 + FD_MARGIN} open files`), problem ?? "");
  assert(problem?.includes("ulimit -Hn 65536"), problem ?? "");
  const here = fdLimits();
  assert(here.soft > 0 && here.hard >= here.soft, JSON.stringify(here));
});

Deno.test("checkFleetTargets() judges the largest fleet against the 100-device baseline", () => {
  const row = (devices: number, over: Partial<FleetFigures> = {}): FleetFigures => ({
    devices,
    failures: 0,
    senderPeakRssMiB: 200,
    senderCpuSecondsPerMiB: 0.01,
    p99Seconds: 9,
    ...over,
  });
  const held = checkFleetTargets([row(100), row(10000, { senderCpuSecondsPerMiB: 0.015 })]);
  assertEquals(held.map((v) => v.holds), [true, true, true, true]);
  const missed = checkFleetTargets([
    row(100),
    row(10000, { failures: 3, senderPeakRssMiB: 600, senderCpuSecondsPerMiB: 0.016 }),
  ]);
  assertEquals(missed.map((v) => v.holds), [false, false, false, true]);
  assert(missed[2].measured.includes("1.60 x"), missed[2].measured);
});
