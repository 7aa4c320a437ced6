/**
 * What the API reads from a request before an operation sees it: a body read under a byte cap
 * (the cap is enforced while reading, so an oversized upload is cut off, never buffered whole),
 * a JSON object whose fields are checked against their types, and query parameters checked by
 * name. Every refusal is an {@linkcode ApiInputError} whose message names the value and says what
 * to send instead; nothing has been changed when one is thrown.
 * @module
 */

import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { MAX_JSON_BODY_BYTES } from "./limits.ts";

/** A request the API cannot take as it is; answered with `status` and `code`. */
export class ApiInputError extends Error {
  /** Stable reason, e.g. `INVALID_BODY`. */
  readonly code: string;
  /** The HTTP status it is answered with (4xx). */
  readonly status: ContentfulStatusCode;

  /** Creates a refusal answered with `status`, `code` and `message`. */
  constructor(status: ContentfulStatusCode, code: string, message: string) {
    super(message);
    this.name = "ApiInputError";
    this.status = status;
    this.code = code;
  }
}

/**
 * The request body, at most `maxBytes`: a `Content-Length` above it is refused before reading,
 * and a body that grows beyond it (chunked, or lying about its length) is cut off at the first
 * byte over. Throws `PAYLOAD_TOO_LARGE` (413); `what` names the body and the setting.
 */
export async function readBody(
  c: Context,
  maxBytes: number,
  what: string,
): Promise<Uint8Array> {
  const tooLarge = (size: string) =>
    new ApiInputError(
      413,
      "PAYLOAD_TOO_LARGE",
      `Cannot read ${what}: ${size} exceeds the limit of ${maxBytes} bytes`,
    );
  const declared = c.req.header("content-length");
  if (declared !== undefined && /^\d+$/.test(declared) && Number(declared) > maxBytes) {
    throw tooLarge(`its Content-Length ${declared}`);
  }
  const body = c.req.raw.body;
  if (body === null) return new Uint8Array(0);
  const reader = body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > maxBytes) {
      await reader.cancel().catch(() => {});
      throw tooLarge(`the body (more than ${size - value.length} bytes read)`);
    }
    parts.push(value);
  }
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Refuses a body whose `Content-Type` is given and is not `type` (415). */
export function requireContentType(c: Context, type: string, hint: string): void {
  const given = c.req.header("content-type");
  if (given === undefined) return;
  if (given.split(";")[0].trim().toLowerCase() !== type) {
    throw new ApiInputError(
      415,
      "UNSUPPORTED_MEDIA_TYPE",
      `Cannot read the body: Content-Type ${JSON.stringify(given)} is not ${type}; ${hint}`,
    );
  }
}

/**
 * The JSON object of the body (`{}` for an empty body), at most {@linkcode MAX_JSON_BODY_BYTES}.
 * Throws `INVALID_BODY` (400) for text that is not JSON or JSON that is not an object.
 */
export async function readJsonObject(c: Context): Promise<Record<string, unknown>> {
  requireContentType(
    c,
    "application/json",
    "send a JSON object with Content-Type application/json",
  );
  const bytes = await readBody(c, MAX_JSON_BODY_BYTES, "the JSON body");
  if (bytes.length === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new ApiInputError(
      400,
      "INVALID_BODY",
      `Cannot read the body: it is not JSON (${(e as Error).message}); send a JSON object`,
    );
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ApiInputError(
      400,
      "INVALID_BODY",
      `Cannot read the body: it must be a JSON object, got ${kindOf(value)}`,
    );
  }
  return value as Record<string, unknown>;
}

/** Types a JSON field may be declared with in {@linkcode checkFields}. */
export type FieldType =
  | "string"
  | "integer"
  | "string[]"
  | "integer[] or string"
  | "string or integer";

/** The declared fields of a JSON object: their types, and whether each must be present. */
export type FieldSchema = Record<string, { type: FieldType; required?: boolean }>;

/**
 * Checks that `body` has only the fields `schema` declares, each of its type, and every required
 * one. Throws `INVALID_BODY` (400) naming the first bad field, what it must be and what it was.
 */
export function checkFields(body: Record<string, unknown>, schema: FieldSchema): void {
  for (const key of Object.keys(body)) {
    if (!(key in schema)) {
      throw new ApiInputError(
        400,
        "INVALID_BODY",
        `Cannot read the body: unknown field ${JSON.stringify(key)}; the fields are ${
          Object.keys(schema).join(", ")
        }`,
      );
    }
  }
  for (const [key, { type, required }] of Object.entries(schema)) {
    const value = body[key];
    if (value === undefined) {
      if (required) {
        throw new ApiInputError(
          400,
          "INVALID_BODY",
          `Cannot read the body: field "${key}" (${describe(type)}) is required`,
        );
      }
      continue;
    }
    if (!hasType(value, type)) {
      throw new ApiInputError(
        400,
        "INVALID_BODY",
        `Cannot read the body: field "${key}" must be ${describe(type)}, got ${kindOf(value)}`,
      );
    }
  }
}

/**
 * The query parameters of the request, each given at most once and each named in `allowed`.
 * Throws `INVALID_QUERY` (400) naming the parameter.
 */
export function checkQuery(c: Context, allowed: readonly string[]): Record<string, string> {
  const all = c.req.queries();
  const out: Record<string, string> = {};
  for (const [name, values] of Object.entries(all)) {
    if (!allowed.includes(name)) {
      throw new ApiInputError(
        400,
        "INVALID_QUERY",
        `Unknown query parameter ${JSON.stringify(name)}; ${
          allowed.length === 0 ? "this path takes none" : `the parameters are ${allowed.join(", ")}`
        }`,
      );
    }
    if (values.length > 1) {
      throw new ApiInputError(
        400,
        "INVALID_QUERY",
        `Query parameter "${name}" is given ${values.length} times; give it once`,
      );
    }
    out[name] = values[0];
  }
  return out;
}

/** A whole-number query parameter (`undefined` when absent); `INVALID_QUERY` otherwise. */
export function wholeNumberParam(query: Record<string, string>, name: string): number | undefined {
  const raw = query[name];
  if (raw === undefined) return undefined;
  if (!/^\d{1,9}$/.test(raw)) {
    throw new ApiInputError(
      400,
      "INVALID_QUERY",
      `Query parameter ${name}=${JSON.stringify(raw)} is not a whole number`,
    );
  }
  return Number(raw);
}

/** A query parameter that must be one of `choices` (`undefined` when absent). */
export function choiceParam<T extends string>(
  query: Record<string, string>,
  name: string,
  choices: readonly T[],
): T | undefined {
  const raw = query[name];
  if (raw === undefined) return undefined;
  if (!(choices as readonly string[]).includes(raw)) {
    throw new ApiInputError(
      400,
      "INVALID_QUERY",
      `Query parameter ${name}=${JSON.stringify(raw)} is not one of ${choices.join(", ")}`,
    );
  }
  return raw as T;
}

function hasType(value: unknown, type: FieldType): boolean {
  const integer = (v: unknown) => typeof v === "number" && Number.isInteger(v);
  switch (type) {
    case "string":
      return typeof value === "string";
    case "integer":
      return integer(value);
    case "string[]":
      return Array.isArray(value) && value.every((v) => typeof v === "string");
    case "integer[] or string":
      return typeof value === "string" || (Array.isArray(value) && value.every(integer));
    case "string or integer":
      return typeof value === "string" || integer(value);
  }
}

function describe(type: FieldType): string {
  switch (type) {
    case "string":
      return "a string";
    case "integer":
      return "a whole number";
    case "string[]":
      return "an array of strings";
    case "integer[] or string":
      return 'an array of whole numbers or a string such as "10,50,100"';
    case "string or integer":
      return 'a string such as "30m" or a whole number of milliseconds';
  }
}

function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return `an array ${short(value)}`;
  if (typeof value === "object") return "an object";
  return `${typeof value} ${short(value)}`;
}

function short(value: unknown): string {
  const text = JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}
