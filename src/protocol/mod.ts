/**
 * Protocol v1 of mqtt-ota: codec, codes, limits and topics (docs/protocol.md).
 * @module
 */
export * from "./codec.ts";
export * from "./crc32.ts";
export * from "./errors.ts";
export * from "./limits.ts";
export * from "./image_format.ts";
export * from "./signing.ts";
export * from "./topics.ts";
