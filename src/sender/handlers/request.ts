/**
 * REQUEST handler (docs/protocol.md §4.1, §5.1, §7): decodes and checks the request, admits it,
 * asks the catalog (and, when wired, the rollout holding the device), lets {@link grantRequest}
 * decide, and opens the transfer, superseding the device's old one. Every refusal is an ERROR on
 * the request's Response Topic (D2).
 * @module
 */

import {
  DecodeError,
  decodeRequest,
  deviceTopics,
  ErrorCode,
  MAX_CORRELATION_BYTES,
  type Request,
  responseTopicProblem,
  toHex,
} from "../../protocol/mod.ts";
import { CatalogError } from "../../catalog/mod.ts";
import type { InboundMessage } from "../../transport/types.ts";
import type { SenderContext } from "../context.ts";
import {
  type Grant,
  type GrantLookup,
  grantRequest,
  resumableImage,
  wantsNewest,
} from "../grant.ts";
import type { ImageMeta } from "../../catalog/mod.ts";
import type { ReplyTo } from "../replies.ts";
import { Transfer, type TransferImage } from "../transfer.ts";

/** Handles one REQUEST from `deviceId`; resolves when it is answered. */
export async function handleRequest(
  ctx: SenderContext,
  deviceId: string,
  message: InboundMessage,
): Promise<void> {
  ctx.stats.requests++;
  const { replies, settings } = ctx;
  const receivedAt = settings.now();
  let request: Request;
  try {
    request = decodeRequest(message.payload);
  } catch (err) {
    const topic = replies.answerTopic(deviceId, message.responseTopic ?? "");
    const why = err instanceof DecodeError ? err.message : String(err);
    return replies.send({ deviceId, topic, correlation: message.correlationData }, {
      code: ErrorCode.MALFORMED_REQUEST,
      message: `${why}; see docs/protocol.md §4.1`,
    });
  }
  const correlation = message.correlationData ?? request.correlationData;
  const responseTopic = message.responseTopic ?? (request.responseTopic || "");
  if (correlation && correlation.length > MAX_CORRELATION_BYTES) {
    const topic = replies.answerTopic(deviceId, responseTopic);
    return replies.send({ deviceId, topic, correlation: undefined }, {
      code: ErrorCode.MALFORMED_REQUEST,
      message:
        `Request refused: Correlation Data of ${correlation.length} bytes exceeds ${MAX_CORRELATION_BYTES}; send at most ${MAX_CORRELATION_BYTES} (docs/protocol.md §6)`,
    });
  }
  if (request.deviceId !== deviceId) {
    const topic = replies.answerTopic(deviceId, responseTopic);
    return replies.send({ deviceId, topic, correlation }, {
      code: ErrorCode.DEVICE_MISMATCH,
      message:
        `Request refused: body device id "${request.deviceId}" differs from the topic's "${deviceId}"`,
    });
  }
  const problem = responseTopicProblem(settings.prefix, deviceId, responseTopic);
  if (problem) {
    const topics = deviceTopics(settings.prefix, deviceId);
    return replies.send({ deviceId, topic: topics.error, correlation }, {
      code: ErrorCode.RESPONSE_TOPIC_REFUSED,
      message:
        `Request refused: ${problem}; use a topic under "${topics.namespace}", e.g. "${topics.data}"`,
    });
  }
  const to: ReplyTo = { deviceId, topic: responseTopic, correlation };
  const busy = ctx.admission.refusal(deviceId, {
    open: ctx.transfers.size,
    deviceHasTransfer: !!ctx.transfers.ofDevice(deviceId),
    now: settings.now(),
    held: ctx.backlog.heldCount,
  });
  if (busy) return replies.send(to, busy);
  const ticket = ctx.admission.begin(deviceId);
  try {
    const grant = await decide(ctx, request, to);
    if (!grant) return;
    await ctx.rollouts?.transferStarted(deviceId, grant.image);
    let download: { url: string; image: TransferImage } | null = null;
    try {
      const url = await downloadUrl(ctx, request, grant.image);
      if (url !== null) download = { url, image: await ctx.images.describe(grant.image) };
    } catch (err) {
      return replies.send(to, {
        code: ErrorCode.INTERNAL_ERROR,
        message:
          `Cannot prepare the HTTP download of ${grant.image.sha256}: ${err}; ask again later`,
      });
    }
    if (download !== null) {
      if (ctx.admission.current(ticket)) {
        openTransfer(ctx, { grant, to, receivedAt, ...download });
      }
      return;
    }
    let image: TransferImage;
    try {
      image = await ctx.images.get(grant.image, grant.chunkSize);
    } catch (err) {
      if (err instanceof CatalogError && err.code === "MEMORY_BOUND") {
        const retryAfterMs = settings.busyRetryAfterMs;
        return replies.send(to, {
          code: ErrorCode.BUSY,
          message: `${err.message}; ask again after ${retryAfterMs} ms`,
          retryAfterMs,
        });
      }
      return replies.send(to, {
        code: ErrorCode.INTERNAL_ERROR,
        message: `Cannot read image ${grant.image.sha256}: ${err}; ask again later`,
      });
    }
    if (ctx.admission.current(ticket)) {
      openTransfer(ctx, {
        grant,
        image,
        to,
        receivedAt,
        shared: sharedEligible(ctx, request, message),
      });
    } else image.release?.();
  } finally {
    ctx.admission.done(ticket);
    ctx.rollouts?.requestEnded(deviceId);
  }
}

/** Asks the catalog and the grant rules; answers a refusal itself and gives null. */
async function decide(ctx: SenderContext, request: Request, to: ReplyTo): Promise<Grant | null> {
  const { catalog } = ctx.settings;
  let lookup: GrantLookup;
  try {
    const found = request.resume ? await catalog.get(toHex(request.resume.sha256)) : null;
    const resumed = resumableImage(request, found);
    // D4: an unknown resume point is no error; the request resolves as if it had none.
    const resolved = resumed ? null : await resolveWanted(ctx, request, to);
    if (resolved === undefined) return null;
    lookup = { resumed, resolved };
  } catch (err) {
    ctx.replies.send(to, {
      code: ErrorCode.INTERNAL_ERROR,
      message: `Catalog lookup failed: ${err}; ask again later`,
    });
    return null;
  }
  const result = grantRequest(request, lookup, ctx.settings);
  if ("refusal" in result) {
    ctx.replies.send(to, result.refusal);
    return null;
  }
  return result.grant;
}

/**
 * The image `wantedVersion` names. With rollouts wired, `latest` is what the rollout holding the
 * device assigns (docs/rollouts.md), else UP_TO_DATE; an explicit version is the catalog's,
 * unless the sender refuses explicit versions. Answers a refusal itself and gives undefined.
 */
async function resolveWanted(
  ctx: SenderContext,
  request: Request,
  to: ReplyTo,
): Promise<ImageMeta | null | undefined> {
  const { catalog } = ctx.settings;
  const driver = ctx.rollouts;
  if (driver === undefined) return await catalog.resolve(request.product, request.wantedVersion);
  const latest = wantsNewest(request);
  const decision = await driver.request(to.deviceId, request, { latest });
  if (!latest) {
    if (driver.allowExplicitVersions) {
      return await catalog.resolve(request.product, request.wantedVersion);
    }
    ctx.replies.send(to, {
      code: ErrorCode.UNKNOWN_IMAGE,
      message:
        `Request refused: this sender serves no explicit version ("${request.wantedVersion}"` +
        `; rollouts.allowExplicitVersions is false); ask for "latest"`,
    });
    return undefined;
  }
  if (decision?.kind !== "image") {
    ctx.replies.send(to, {
      code: ErrorCode.UP_TO_DATE,
      message: `No update for device "${to.deviceId}": ${
        decision?.reason ?? "the sender is stopping"
      }`,
    });
    return undefined;
  }
  return await catalog.get(decision.image.sha256);
}

/**
 * The download URL when the request is to be served over HTTP (§7.3): the device asked (flag
 * `HTTP`) or its product is listed, and an HTTP server serves downloads; otherwise null (CHUNKs).
 */
async function downloadUrl(
  ctx: SenderContext,
  request: Request,
  image: ImageMeta,
): Promise<string | null> {
  const wiring = ctx.settings.httpDownload;
  if (!wiring) return null;
  const listed = wiring.products.includes("*") || wiring.products.includes(image.product);
  if (!request.http && !listed) return null;
  return await wiring.urlFor(request.deviceId, image.sha256);
}

/**
 * Protocol §11.1: a REQUEST may join a shared stream when it sets SHARED and came with MQTT 5
 * properties (under MQTT 3.1.1 a stale MANIFEST would subscribe the device to an old stream).
 * A URL transfer (§7.3) sends no CHUNKs and joins none.
 */
function sharedEligible(ctx: SenderContext, request: Request, message: InboundMessage): boolean {
  return ctx.settings.shared.enabled && request.shared === true &&
    message.responseTopic !== undefined;
}

/**
 * Opens the granted transfer, a URL transfer when `url` is given, a member of a shared stream
 * when `shared`; the device's old transfer, if any, is superseded (§7). Its MANIFEST answers the
 * REQUEST that arrived at `receivedAt`: the observer hears how long that took. It logs nothing:
 * the transfer's one log line is written when it ends (recording.ts), with its id and start
 * offset; its open record in the catalog shows it meanwhile. A line per start cost the sender
 * about as much CPU as a 64 KiB CHUNK (docs/performance.md, "Fixed cost per transfer").
 */
function openTransfer(
  ctx: SenderContext,
  { grant, image, to, url, receivedAt, shared = false }: {
    grant: Grant;
    image: TransferImage;
    to: ReplyTo;
    url?: string;
    receivedAt: number;
    shared?: boolean;
  },
): void {
  const { settings } = ctx;
  const now = settings.now();
  const old = ctx.transfers.ofDevice(to.deviceId);
  if (old) ctx.safely(() => old.dispatch({ type: "supersede" }, now));
  const stream = shared
    ? ctx.streams.streamFor(image, {
      chunkSize: grant.chunkSize,
      window: grant.window,
      startIndex: grant.startOffset / grant.chunkSize,
    }) ?? undefined
    : undefined;
  const transfer = new Transfer({
    transferId: ctx.transfers.newId(),
    deviceId: to.deviceId,
    image,
    chunkSize: grant.chunkSize,
    window: grant.window,
    startOffset: grant.startOffset,
    dataTopic: to.topic,
    ackTopic: deviceTopics(settings.prefix, to.deviceId).ack(settings.senderId),
    correlationData: to.correlation ?? new Uint8Array(0),
    dataQos: settings.dataQos,
    adaptive: settings.adaptiveWindow,
    timing: settings.timing,
    send: (topic, payload, options) => ctx.backlog.publish(topic, payload, options),
    prepare: (topic, options) => ctx.backlog.prepare(topic, options),
    mayPublish: (t) => ctx.backlog.mayPublish(t),
    onClose: (end) => ctx.transferClosed(end),
    download: url === undefined ? undefined : {
      url,
      size: grant.image.size,
      deadlineMs: settings.httpDownload!.statusDeadlineMs,
    },
    stream,
  });
  ctx.transfers.add(transfer);
  ctx.stats.transfersStarted++;
  const { image: meta, startOffset } = grant;
  ctx.recorder.transferOpened({
    transferId: transfer.id,
    deviceId: to.deviceId,
    sha256: meta.sha256,
    product: meta.product,
    version: meta.version,
    startOffset,
  });
  transfer.start(now);
  const latencyMs = settings.now() - receivedAt;
  ctx.safely(() => ctx.observer.manifestSent(latencyMs));
}
