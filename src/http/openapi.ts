/**
 * The OpenAPI 3.1 document of the HTTP API, written by hand and served at `/api/openapi.json`
 * without a token (it describes the API, it holds no data). A test checks that every `/api`
 * route the app serves is in it and that it lists no route the app does not serve; enums and
 * bounds come from the constants the code uses, so they cannot drift either.
 * @module
 */

import { Hono } from "hono";
import { MAX_IMAGE_BYTES } from "../catalog/mod.ts";
import { DEFAULT_HISTORY_ROWS, MAX_HISTORY_ROWS } from "../ops/transfers.ts";
import { ONLINE_WINDOW_MS } from "../ops/fleet.ts";
import { DEFAULT_LISTED_ROLLOUTS, MAX_LISTED_ROLLOUTS } from "../ops/rollouts.ts";
import {
  ACTIVE_ROLLOUT_STATES,
  DEFAULT_PAGE_SIZE,
  DEVICE_STATES,
  FINAL_ROLLOUT_STATES,
  MAX_PAGE_SIZE,
} from "../rollout/mod.ts";
import { UPLOAD_KINDS } from "./api/images.ts";
import { HEARTBEAT_MS, MAX_EVENT_SUBSCRIBERS } from "./events.ts";
import { MAX_LIVE_TRANSFERS } from "./live.ts";
import { FLEET_SUMMARY_TTL_MS, MAX_JSON_BODY_BYTES } from "./api/limits.ts";
import {
  CATALOG_ERROR_STATUS,
  INVENTORY_ERROR_STATUS,
  ROLLOUT_ERROR_STATUS,
} from "./api/error_status.ts";

type Schema = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const arrayOf = (items: Schema): Schema => ({ type: "array", items });
const str = (description: string): Schema => ({ type: "string", description });
const int = (description: string): Schema => ({ type: "integer", description });

function object(properties: Record<string, Schema>, optional: string[] = []): Schema {
  return {
    type: "object",
    properties,
    required: Object.keys(properties).filter((k) => !optional.includes(k)),
  };
}

function ok(description: string, schema: Schema, status = "200"): Record<string, unknown> {
  return { [status]: { description, content: { "application/json": { schema } } } };
}

/** The error answers an operation may give, each with the shared error body. */
function errors(...statuses: number[]): Record<string, unknown> {
  const why: Record<number, string> = {
    400: "Bad input: wrong types, unknown fields or parameters, values out of range",
    401: "No valid bearer token",
    403: "A read token asked for a change",
    404: "No such image, device or rollout",
    409: "Conflicts with the current state (a duplicate, a target in use, a forbidden transition)",
    413: "The body exceeds its limit",
    415: "The body has the wrong Content-Type",
    422: "The image or the image reference was refused by the catalog's rules",
    503: "Too many event streams are open; try again later",
  };
  return Object.fromEntries(
    [401, ...statuses].map((s) => [
      String(s),
      { description: why[s], content: { "application/json": { schema: ref("Error") } } },
    ]),
  );
}

function query(name: string, description: string, schema: Schema = { type: "string" }): Schema {
  return { name, in: "query", required: false, description, schema };
}

function path(name: string, description: string): Schema {
  return { name, in: "path", required: true, description, schema: { type: "string" } };
}

/** Every route takes the bearer header; only the event stream also takes `?token=`. */
const BEARER = [{ bearer: [] }];
const IMAGE_REF = path(
  "ref",
  "A SHA-256, a unique SHA-256 prefix of at least 8 hex digits, or product@version",
);
const ROLLOUT_ID = path("id", "Rollout id, e.g. r-1");

function rolloutCommand(command: string, description: string): Record<string, unknown> {
  return {
    post: {
      summary: `${command[0].toUpperCase()}${command.slice(1)} a rollout`,
      description,
      operationId: `${command}Rollout`,
      "x-access": "admin",
      tags: ["rollouts"],
      parameters: [ROLLOUT_ID],
      requestBody: {
        required: false,
        content: { "application/json": { schema: ref("RolloutCommand") } },
      },
      responses: {
        ...ok("The rollout after the command", ref("RolloutRecord")),
        ...errors(400, 403, 404, 409, 413, 415),
      },
    },
  };
}

const ERROR_CODES = [
  ...new Set([
    ...Object.keys(CATALOG_ERROR_STATUS),
    ...Object.keys(ROLLOUT_ERROR_STATUS),
    ...Object.keys(INVENTORY_ERROR_STATUS),
    "UNAUTHORIZED",
    "FORBIDDEN",
    "INVALID_BODY",
    "INVALID_QUERY",
    "PAYLOAD_TOO_LARGE",
    "UNSUPPORTED_MEDIA_TYPE",
    "TOO_MANY_SUBSCRIBERS",
    "CONFIG_INVALID",
    "USAGE",
    "INTERNAL",
  ]),
].sort();

const WAVE_COUNTS = object(Object.fromEntries(DEVICE_STATES.map((s) => [s, int(`Devices ${s}`)])));

/** The OpenAPI document of `/api`. */
export const OPENAPI_DOCUMENT = {
  openapi: "3.1.0",
  info: {
    title: "mqtt-ota sender API",
    version: "1",
    description:
      "The catalog, devices, rollouts and transfers of an mqtt-ota sender. Every operation " +
      "is the one the `deno task ota` CLI runs. JSON in and out; errors are " +
      '`{"error":{"code","message"}}` with a stable code. Reads need a token from ' +
      "`http.readTokens` or `http.adminTokens`, changes (the operations marked " +
      "`x-access: admin`) one from `http.adminTokens`.",
  },
  security: BEARER,
  tags: [
    { name: "images" },
    { name: "devices" },
    { name: "rollouts" },
    { name: "transfers" },
    { name: "fleet" },
    { name: "service" },
  ],
  paths: {
    "/api/health": {
      get: {
        summary: "Whether the sender runs",
        operationId: "health",
        tags: ["service"],
        responses: {
          ...ok(
            "The sender answers",
            object({
              ok: { type: "boolean" },
              senderId: str("This sender's id"),
              transfers: int("Transfers open now"),
            }),
          ),
          ...errors(),
        },
      },
    },
    "/api/openapi.json": {
      get: {
        summary: "This document",
        operationId: "openapi",
        tags: ["service"],
        security: [],
        responses: ok("The OpenAPI document", { type: "object" }),
      },
    },
    "/api/fleet": {
      get: {
        summary: "Devices per product and running version, and how many are online",
        description: `A device is online when it was seen (a REQUEST or a STATUS) within the last ${
          ONLINE_WINDOW_MS / 1000
        } seconds. One summary answers for ${
          FLEET_SUMMARY_TTL_MS / 1000
        } s (its \`at\` says when it was taken).`,
        operationId: "fleet",
        tags: ["fleet"],
        responses: { ...ok("The fleet now", ref("FleetSummary")), ...errors(400) },
      },
    },
    "/api/images": {
      get: {
        summary: "List images, by product, newest version first",
        operationId: "listImages",
        tags: ["images"],
        parameters: [query("product", "Only images of this product")],
        responses: { ...ok("The images", arrayOf(ref("ImageMeta"))), ...errors(400) },
      },
      post: {
        summary: "Upload an image (the CLI's image add)",
        description:
          "The body is the image's bytes; its settings are query parameters. ESP32 app " +
          "images are recognised from their bytes; product and version default to (and must " +
          "equal) the app descriptor's. The body is cut off beyond `http.maxUploadBytes` " +
          `(default ${MAX_IMAGE_BYTES}). With release=true a one-wave rollout to every device ` +
          "of the product starts too; when it is refused, nothing is stored.",
        operationId: "addImage",
        "x-access": "admin",
        tags: ["images"],
        parameters: [
          query("product", "Product; required for kind=file"),
          query("version", "Version; required for kind=file"),
          query("name", "Display name; default <product>-<version>.bin"),
          query("kind", "esp32-app (default) or file: accept any bytes (the CLI's --generic)", {
            type: "string",
            enum: UPLOAD_KINDS,
          }),
          query("signature", "ECDSA P-256 signature r‖s over the image's SHA-256, 128 hex digits"),
          query("release", "Also release it to every device of its product (image add --release)", {
            type: "string",
            enum: ["true", "false"],
          }),
        ],
        requestBody: {
          required: true,
          content: {
            "application/octet-stream": {
              schema: { type: "string", format: "binary", maxLength: MAX_IMAGE_BYTES },
            },
          },
        },
        responses: {
          ...ok("The stored image", ref("AddedImage"), "201"),
          ...errors(400, 403, 409, 413, 415, 422),
        },
      },
    },
    "/api/images/{ref}": {
      get: {
        summary: "Show one image",
        operationId: "showImage",
        tags: ["images"],
        parameters: [IMAGE_REF],
        responses: { ...ok("The image", ref("ImageMeta")), ...errors(400, 404) },
      },
      delete: {
        summary: "Remove an image and its stored bytes",
        operationId: "removeImage",
        "x-access": "admin",
        tags: ["images"],
        parameters: [IMAGE_REF],
        responses: { ...ok("The removed image", ref("ImageMeta")), ...errors(400, 403, 404) },
      },
    },
    "/api/devices": {
      get: {
        summary: "List devices, filtered, one page at a time",
        description:
          "A page may hold fewer devices than limit and still have a cursor: pass cursor " +
          "back until a page has none. A filter given empty is no filter.",
        operationId: "listDevices",
        tags: ["devices"],
        parameters: [
          query("product", "Only devices of this product"),
          query("group", "Only devices labelled with this group"),
          query("version", "Only devices running this version"),
          query("state", "Only devices in this state of the rollout holding them", {
            type: "string",
            enum: DEVICE_STATES,
          }),
          query("cursor", "Continue after this device (the cursor of the previous page)"),
          query("limit", `Devices per page (default ${DEFAULT_PAGE_SIZE})`, {
            type: "integer",
            minimum: 1,
            maximum: MAX_PAGE_SIZE,
          }),
        ],
        responses: { ...ok("One page", ref("DevicePage")), ...errors(400) },
      },
    },
    "/api/devices/{id}": {
      get: {
        summary: "Show one device and its recent history",
        operationId: "showDevice",
        tags: ["devices"],
        parameters: [path("id", "Device id")],
        responses: { ...ok("The device", ref("DeviceDetail")), ...errors(400, 404) },
      },
    },
    "/api/rollouts": {
      get: {
        summary: "List the newest rollouts, oldest of them first",
        operationId: "listRollouts",
        tags: ["rollouts"],
        parameters: [
          query("limit", `Newest rollouts listed (default ${DEFAULT_LISTED_ROLLOUTS})`, {
            type: "integer",
            minimum: 1,
            maximum: MAX_LISTED_ROLLOUTS,
          }),
        ],
        responses: { ...ok("The rollouts", arrayOf(ref("RolloutRow"))), ...errors(400) },
      },
      post: {
        summary: "Create and start a rollout (the CLI's rollout create)",
        description: `A refused create writes nothing. Body at most ${MAX_JSON_BODY_BYTES} bytes.`,
        operationId: "createRollout",
        "x-access": "admin",
        tags: ["rollouts"],
        requestBody: {
          required: true,
          content: { "application/json": { schema: ref("RolloutCreate") } },
        },
        responses: {
          ...ok("The new rollout", ref("RolloutRecord"), "201"),
          ...errors(400, 403, 409, 413, 415, 422),
        },
      },
    },
    "/api/rollouts/{id}": {
      get: {
        summary: "Show a rollout: waves, devices per state, what happens next, its log",
        operationId: "showRollout",
        tags: ["rollouts"],
        parameters: [ROLLOUT_ID],
        responses: { ...ok("The rollout", ref("RolloutDetail")), ...errors(400, 404) },
      },
    },
    "/api/rollouts/{id}/pause": rolloutCommand(
      "pause",
      "Stop offering the image; transfers under way finish.",
    ),
    "/api/rollouts/{id}/resume": rolloutCommand("resume", "Continue a paused rollout."),
    "/api/rollouts/{id}/cancel": rolloutCommand(
      "cancel",
      "End a rollout; updated devices stay as they are.",
    ),
    "/api/events": {
      get: {
        summary: "Server-sent events for the dashboard: live transfers and rollouts",
        description: "Events: `hello` once (`{senderId, access}`), `transfers` (LiveTransfers) " +
          "and `rollouts` (`{rollouts: [...]}`) when their content changes, and a comment line " +
          `every ${HEARTBEAT_MS / 1000} s. At most ${MAX_EVENT_SUBSCRIBERS} streams at once. ` +
          "EventSource cannot send headers: pass the token as ?token=.",
        operationId: "events",
        tags: ["service"],
        security: [{ bearer: [] }, { token: [] }],
        responses: {
          "200": {
            description: "The event stream, until the client or the server ends it",
            content: { "text/event-stream": { schema: { type: "string" } } },
          },
          ...errors(503),
        },
      },
    },
    "/api/transfers": {
      get: {
        summary: "Recent transfers: the open ones first, then finished ones, newest first",
        operationId: "listTransfers",
        tags: ["transfers"],
        parameters: [
          query("limit", `Finished transfers listed (default ${DEFAULT_HISTORY_ROWS})`, {
            type: "integer",
            minimum: 1,
            maximum: MAX_HISTORY_ROWS,
          }),
        ],
        responses: { ...ok("The transfers", arrayOf(ref("TransferRecord"))), ...errors(400) },
      },
    },
    "/api/transfers/live": {
      get: {
        summary: "Transfers this sender has open now, with their progress and rate",
        description: `The first ${MAX_LIVE_TRANSFERS} by transfer id, as /api/events sends them.`,
        operationId: "liveTransfers",
        tags: ["transfers"],
        responses: { ...ok("The open transfers", ref("LiveTransfers")), ...errors(400) },
      },
    },
  },
  components: {
    securitySchemes: {
      bearer: { type: "http", scheme: "bearer", description: "Authorization: Bearer <token>" },
      token: {
        type: "apiKey",
        in: "query",
        name: "token",
        description: "The token as ?token=, on /api/events only (EventSource cannot send a header)",
      },
    },
    schemas: {
      Error: object({
        error: object({
          code: { type: "string", enum: ERROR_CODES, description: "Stable code" },
          message: str("What failed and what to do next"),
        }),
      }),
      ImageMeta: object({
        sha256: str("SHA-256 of the image, lower-case hex: its identity"),
        name: str("Display name"),
        product: str("Product"),
        version: str("Version"),
        size: int("Bytes"),
        kind: { type: "string", enum: UPLOAD_KINDS },
        projectName: str("ESP32 apps: project name of the app descriptor"),
        idfVersion: str("ESP32 apps: ESP-IDF version"),
        chipId: int("ESP32 apps: chip id of the image header"),
        addedAt: { type: "string", format: "date-time" },
        signature: str("ECDSA P-256 signature r‖s, hex, when signed"),
      }, ["projectName", "idfVersion", "chipId", "signature"]),
      AddedImage: object({
        image: ref("ImageMeta"),
        rollout: ref("RolloutRecord"),
        warnings: arrayOf({ type: "string" }),
      }, ["rollout"]),
      RolloutCreate: {
        ...object({
          image: str("Image to deliver: product@version or a SHA-256 prefix"),
          groups: arrayOf({ type: "string" }),
          devices: arrayOf({ type: "string" }),
          waves: {
            oneOf: [arrayOf({ type: "integer" }), { type: "string" }],
            description:
              'Cumulative percentages, the last one 100, e.g. [10,50,100] or "10,50,100"',
          },
          successPct: int("Share of a wave that must succeed before the next"),
          abortFailurePct: int("Abort when failures exceed this share of outcomes"),
          abortMinDevices: int("...after at least this many outcomes"),
          deviceTimeout: {
            oneOf: [{ type: "string" }, { type: "integer" }],
            description: '"30m" or ms',
          },
          retries: int("Further attempts after a failed or timed out one"),
          jitter: { oneOf: [{ type: "string" }, { type: "integer" }], description: '"60s" or ms' },
        }, [
          "groups",
          "devices",
          "waves",
          "successPct",
          "abortFailurePct",
          "abortMinDevices",
          "deviceTimeout",
          "retries",
          "jitter",
        ]),
        additionalProperties: false,
      },
      RolloutCommand: {
        ...object({ reason: str("Why, kept in the rollout's log") }, ["reason"]),
        additionalProperties: false,
      },
      RolloutState: { type: "string", enum: [...ACTIVE_ROLLOUT_STATES, ...FINAL_ROLLOUT_STATES] },
      RolloutRecord: {
        type: "object",
        description: "A rollout as stored: its validated spec and where it stands",
        properties: {
          id: str("Rollout id"),
          state: ref("RolloutState"),
          image: object({
            sha256: str("SHA-256"),
            product: str("Product"),
            version: str("Version"),
          }),
          target: object({
            product: str("Product"),
            groups: arrayOf({ type: "string" }),
            devices: arrayOf({ type: "string" }),
          }),
          waves: arrayOf({ type: "integer" }),
          currentWave: int("Index of the newest open wave; -1 before the start"),
          reason: str("Why it is in its state"),
          createdAt: { type: "string", format: "date-time" },
          updatedAt: { type: "string", format: "date-time" },
        },
        required: ["id", "state", "image", "target", "waves", "currentWave", "createdAt"],
      },
      RolloutSummary: {
        type: "object",
        properties: {
          id: str("Rollout id"),
          image: str("product@version"),
          sha256: str("SHA-256 of the image"),
          target: str("Target, for people"),
          state: ref("RolloutState"),
          reason: str("Why it is in that state"),
          currentWave: int("Wave open now, from 1; 0 before the start"),
          next: str("What the rules say next"),
          waves: arrayOf(object({
            wave: int("Wave number, from 1"),
            pct: int("Cumulative percentage"),
            openedAt: { type: ["string", "null"], format: "date-time" },
            devices: WAVE_COUNTS,
            enrolled: int("Devices enrolled"),
          })),
          totals: WAVE_COUNTS,
          outcomes: object({ outcomes: int("Outcomes"), failures: int("Failures") }),
        },
        required: ["id", "image", "state", "currentWave", "waves", "totals", "outcomes"],
      },
      RolloutRow: object({
        summary: ref("RolloutSummary"),
        createdAt: { type: "string", format: "date-time" },
      }),
      RolloutDetail: object({
        summary: ref("RolloutSummary"),
        settings: object({
          successPct: int("%"),
          abortFailurePct: int("%"),
          abortMinDevices: int("Outcomes"),
          deviceTimeoutMs: int("ms"),
          retries: int("Attempts"),
          jitterMs: int("ms"),
        }),
        log: arrayOf(object({
          at: { type: "string", format: "date-time" },
          event: str("Event"),
          state: ref("RolloutState"),
          wave: int("Wave index after it"),
          reason: str("Why"),
        })),
        succeeded: arrayOf({ type: "string" }),
        moreSucceeded: { type: "boolean" },
      }),
      DeviceRecord: object({
        id: str("Device id"),
        product: str("Product it runs; empty until known"),
        version: str("Version it runs; empty until known"),
        firstSeen: { type: "string", format: "date-time" },
        lastSeen: { type: "string", format: "date-time" },
        groups: arrayOf({ type: "string" }),
        lastTransfer: {
          oneOf: [
            { type: "null" },
            object({
              sha256: str("SHA-256"),
              version: str("Version"),
              outcome: str("How it ended"),
              bytes: int("Bytes sent"),
              seconds: { type: "number" },
              at: { type: "string", format: "date-time" },
            }),
          ],
        },
        rollout: {
          oneOf: [
            { type: "null" },
            object({
              id: str("Rollout id"),
              state: { type: "string", enum: DEVICE_STATES },
              at: { type: "string", format: "date-time" },
            }),
          ],
        },
        historySeq: int("History entries written so far"),
      }),
      DevicePage: object({
        devices: arrayOf(ref("DeviceRecord")),
        cursor: str("Where the next page starts; absent on the last page"),
      }, ["cursor"]),
      DeviceDetail: object({
        record: ref("DeviceRecord"),
        history: arrayOf(object({
          seq: int("Sequence number"),
          at: { type: "string", format: "date-time" },
          kind: { type: "string", enum: ["request", "status", "transfer", "rollout", "label"] },
          text: str("What happened"),
        })),
      }),
      TransferRecord: object({
        transferId: int("Transfer id of the MANIFEST"),
        deviceId: str("Device"),
        sha256: str("SHA-256 of the image"),
        product: str("Product"),
        version: str("Version"),
        bytes: int("Bytes acknowledged"),
        startOffset: int("First byte sent"),
        seconds: { type: "number" },
        resends: int("Chunks sent again"),
        outcome: str("VERIFIED, HASH_MISMATCH, ..., OPEN while it runs, INTERRUPTED"),
        ok: { type: "boolean" },
        detail: str("Readable detail"),
        startedAt: { type: "string", format: "date-time" },
        endedAt: { type: "string", format: "date-time" },
        senderId: str("Sender instance that ran it"),
      }, ["detail"]),
      LiveTransfers: object({
        open: int("Transfers open now, also those past the listed ones"),
        transfers: arrayOf(object({
          transferId: int("Transfer id"),
          deviceId: str("Device"),
          image: str("product@version being sent"),
          state: str("Transfer state (protocol §7)"),
          percent: { type: "number", description: "Share of the image the device holds, 0..100" },
          progress: str("Bytes held of the image size, for people"),
          rate: { type: ["integer", "null"], description: "Bytes per second; null before an ACK" },
          rateText: str("The rate for people"),
        })),
      }),
      FleetSummary: object({
        at: { type: "string", format: "date-time" },
        onlineWindowSeconds: int("A device seen this recently is online"),
        devices: int("Devices the inventory knows"),
        online: int("Of those, online"),
        products: arrayOf(object({
          product: str("Product; empty for devices that never named it"),
          devices: int("Devices"),
          online: int("Online"),
          versions: arrayOf(object({
            version: str("Running version; empty when unknown"),
            devices: int("Devices"),
            online: int("Online"),
          })),
        })),
      }),
    },
  },
} as const;

/** Serves {@link OPENAPI_DOCUMENT} at `/openapi.json`, to be mounted under `/api`. */
export function openApiRoutes(): Hono {
  const app = new Hono();
  app.get("/openapi.json", (c) => c.json(OPENAPI_DOCUMENT));
  return app;
}
