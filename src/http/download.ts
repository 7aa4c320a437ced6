/**
 * The image download endpoint of HTTP mode (docs/protocol.md §7.3): `GET /img/{sha256}?d=&e=&t=`
 * serves the catalog's bytes of one image to the one device its token names, whole (200) or one
 * `Range` of it (206), so that a device cut off mid-download resumes from the bytes it holds.
 *
 * The token, not a bearer token, authorises the request: it is checked before the catalog is
 * asked, so a client without one learns nothing about which images exist. The bytes are leased
 * from the catalog (its one memory bound, `cache.maxBytes`, shared with the MQTT transfers and
 * read from KV once for every download of the image) and streamed in slices; the lease ends when
 * the response ends or the client goes away.
 * @module
 */

import { Hono } from "hono";
import type { Context } from "hono";
import { CatalogError } from "../catalog/mod.ts";
import type { HttpContext } from "./context.ts";
import { httpError } from "./errors.ts";
import { type DownloadTokens, tokenFromQuery } from "./download_token.ts";

/** Bytes handed to the response stream at a time. */
export const DOWNLOAD_SLICE_BYTES = 64 * 1024;
/** `Retry-After` (seconds) of a 503 when the catalog's memory bound has no room for the image. */
export const DOWNLOAD_RETRY_AFTER_SECONDS = 5;

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** An inclusive byte range of an image. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * The range a `Range` header asks of an image of `size` bytes: null for the whole image (no
 * header), `"unsatisfiable"` for a header this endpoint cannot serve (malformed, several ranges,
 * a start at or beyond the size). `bytes=a-b`, `bytes=a-` and `bytes=-n` (the last n bytes) are
 * served; an end beyond the image is cut to its last byte (RFC 9110 §14.1.2).
 */
export function parseRange(
  header: string | undefined,
  size: number,
): ByteRange | null | "unsatisfiable" {
  if (header === undefined) return null;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === "" && m[2] === "")) return "unsatisfiable";
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return "unsatisfiable";
  return { start, end };
}

/** The `/img` surface: mount with `app.route("/img", downloadApp(ctx, tokens))`. */
export function downloadApp(ctx: HttpContext, tokens: DownloadTokens): Hono {
  const app = new Hono();
  const now = ctx.now ?? Date.now;
  app.get("/:sha256", async (c) => {
    const sha = c.req.param("sha256");
    const token = tokenFromQuery((name) => c.req.query(name));
    if (token === null) {
      return httpError(
        c,
        403,
        "TOKEN_MISSING",
        "A download URL needs its d, e and t parameters; ask the sender for the image again (a REQUEST) to get a fresh URL",
      );
    }
    if (!SHA256_HEX.test(sha)) {
      return httpError(
        c,
        404,
        "UNKNOWN_IMAGE",
        `No image "${
          sha.slice(0, 80)
        }": the path names an image by its SHA-256 in 64 lower-case hex digits`,
      );
    }
    const refusal = await tokens.check(token, sha, now());
    if (refusal === "TOKEN_EXPIRED") {
      return httpError(
        c,
        403,
        refusal,
        `The download token expired at ${
          new Date(token.expiry * 1000).toISOString()
        }; send a REQUEST again (with the resume point) to get a fresh URL`,
      );
    }
    if (refusal !== null) {
      return httpError(
        c,
        403,
        refusal,
        `The download token is not valid for device "${token.deviceId}" and image ${sha}; use the URL of the device's own MANIFEST`,
      );
    }
    const meta = await ctx.catalog.get(sha);
    if (meta === null) {
      return httpError(
        c,
        404,
        "UNKNOWN_IMAGE",
        `The catalog has no image ${sha} (it was removed); send a REQUEST again`,
      );
    }
    const range = parseRange(c.req.header("range"), meta.size);
    if (range === "unsatisfiable") {
      c.header("Content-Range", `bytes */${meta.size}`);
      return httpError(
        c,
        416,
        "RANGE_NOT_SATISFIABLE",
        `Cannot serve Range "${
          (c.req.header("range") ?? "").slice(0, 80)
        }" of a ${meta.size}-byte image; ask for one range "bytes=a-b" or "bytes=a-" with a below ${meta.size}`,
      );
    }
    const { start, end } = range ?? { start: 0, end: meta.size - 1 };
    const headers = new Headers({
      "Content-Type": "application/octet-stream",
      "Content-Length": String(end - start + 1),
      "Accept-Ranges": "bytes",
      "ETag": `"${sha}"`,
      "Cache-Control": "no-store",
    });
    if (range !== null) headers.set("Content-Range", `bytes ${start}-${end}/${meta.size}`);
    const status = range === null ? 200 : 206;
    if (c.req.method === "HEAD") return new Response(null, { status, headers });
    return await streamed(c, ctx, { sha, start, end, status, headers });
  });
  return app;
}

/** Leases the image and streams bytes `start..end` of it; 503 when the memory bound is full. */
async function streamed(
  c: Context,
  ctx: HttpContext,
  o: { sha: string; start: number; end: number; status: number; headers: Headers },
): Promise<Response> {
  let lease;
  try {
    lease = await ctx.catalog.leaseImage(o.sha);
  } catch (err) {
    if (err instanceof CatalogError && err.code === "MEMORY_BOUND") {
      c.header("Retry-After", String(DOWNLOAD_RETRY_AFTER_SECONDS));
      return httpError(
        c,
        503,
        "BUSY",
        `${err.message}; try again in ${DOWNLOAD_RETRY_AFTER_SECONDS} s`,
      );
    }
    if (err instanceof CatalogError && err.code === "NOT_FOUND") {
      return httpError(c, 404, "UNKNOWN_IMAGE", `${err.message}; send a REQUEST again`);
    }
    throw err;
  }
  const bytes = lease.bytes;
  let at = o.start;
  const stop = o.end + 1;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= stop) {
        lease.release();
        controller.close();
        return;
      }
      const next = Math.min(stop, at + DOWNLOAD_SLICE_BYTES);
      // A copy: the lease's bytes are shared and the stream may transfer what it is given.
      controller.enqueue(bytes.slice(at, next));
      at = next;
    },
    cancel() {
      lease.release();
    },
  }, { highWaterMark: 1 });
  return new Response(body, { status: o.status, headers: o.headers });
}
