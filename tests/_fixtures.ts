/**
 * Protocol fixtures shared by the tests.
 * @module
 */
import type { Request } from "../src/protocol/mod.ts";

/** A valid REQUEST for product "blink" from device `d1`; `overrides` change any field. */
export function request(overrides: Partial<Request> = {}): Request {
  return {
    chunkSize: 1024,
    window: 2,
    deviceId: "d1",
    product: "blink",
    currentVersion: "1.0.0",
    wantedVersion: "",
    responseTopic: "",
    correlationData: new Uint8Array(0),
    resume: null,
    ...overrides,
  };
}
