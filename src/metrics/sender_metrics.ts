/**
 * The sender's metrics: transfers, requests, chunks, bytes, resends, NACKs, ERROR answers and the
 * request-to-MANIFEST latency. Counters and gauges are copied from the sender's own counters
 * ({@linkcode Sender.snapshot}) when a scrape asks, so the send path pays nothing for them; only
 * the latency histogram is fed as it happens, once per MANIFEST, through the
 * {@linkcode SenderObserver} this module hands the sender.
 * @module
 */

import { ErrorCode, NackReason } from "../protocol/mod.ts";
import type { Sender, SenderObserver, SenderSnapshot } from "../sender/mod.ts";
import { Histogram, type Registry } from "./_prom.ts";
import { MANIFEST_LATENCY_BUCKETS_S } from "./limits.ts";
import { readCounter, readGauge, type ScrapeSource } from "./read_metric.ts";

/** NACK reasons a device may send (every one but NONE), reported from zero. */
const NACK_REASONS = Object.keys(NackReason).filter((r) => r !== "NONE");
/** ERROR codes the sender may answer with, reported from zero. */
const ERROR_CODES = Object.keys(ErrorCode);

/** The part of a sender the metrics read and observe. */
export type ObservedSender = Pick<Sender, "snapshot" | "observe">;

/**
 * Registers the sender's metrics on `registry` and makes them observe `sender`; with no sender
 * (a server beside a catalog only) they are registered and report nothing. The returned source
 * takes one snapshot per scrape, so every series of a scrape comes from the same moment.
 */
export function registerSenderMetrics(
  registry: Registry,
  sender: ObservedSender | undefined,
): ScrapeSource {
  const latency = new Histogram({
    name: "ota_manifest_latency_seconds",
    help: "Time from a REQUEST's arrival to its MANIFEST: catalog lookup, rollout decision, " +
      "image lease and signature",
    buckets: [...MANIFEST_LATENCY_BUCKETS_S],
    registers: [registry],
  });
  const observer: SenderObserver = { manifestSent: (ms) => latency.observe(ms / 1000) };
  sender?.observe(observer);

  let snap: SenderSnapshot | undefined;
  const stats = () => snap?.stats;
  readGauge(registry, {
    name: "ota_transfers_active",
    help: "Transfers open now",
    read: () => snap?.openTransfers,
  });
  readCounter(registry, {
    name: "ota_transfers_started_total",
    help: "Transfers opened (a MANIFEST sent)",
    read: () => stats()?.transfersStarted,
  });
  readCounter(registry, {
    name: "ota_transfers_finished_total",
    help: "Transfers closed, by outcome (a STATUS name such as VERIFIED or BOOTED, " +
      "DELIVERED_UNVERIFIED, SUPERSEDED, TRANSFER_ABORTED, ...)",
    label: "outcome",
    read: () => stats()?.outcomes,
  });
  readCounter(registry, {
    name: "ota_requests_total",
    help: "REQUESTs received, answered or not",
    read: () => stats()?.requests,
  });
  readCounter(registry, {
    name: "ota_chunks_sent_total",
    help: "CHUNKs published, resends included",
    read: () => stats()?.chunksSent,
  });
  readCounter(registry, {
    name: "ota_chunk_resends_total",
    help: "CHUNKs published again, by cause: a NACK from the device or a resend timeout",
    label: "cause",
    read: () => {
      const s = stats();
      return s && { nack: s.resendsAfterNack, timeout: s.resends - s.resendsAfterNack };
    },
  });
  readCounter(registry, {
    name: "ota_shared_streams_total",
    help: "Shared image streams opened (one-to-many delivery, protocol §11)",
    read: () => stats()?.streams,
  });
  readCounter(registry, {
    name: "ota_shared_chunks_total",
    help: "CHUNKs published once on a shared image topic for every member of its stream",
    read: () => stats()?.sharedChunks,
  });
  readCounter(registry, {
    name: "ota_shared_payload_bytes_total",
    help: "Image bytes published on shared image topics",
    read: () => stats()?.sharedBytes,
  });
  readCounter(registry, {
    name: "ota_repair_payload_bytes_total",
    help: "Image bytes stream members were sent by unicast: repairs and late joiners (§11.2)",
    read: () => stats()?.repairBytes,
  });
  readCounter(registry, {
    name: "ota_nacks_total",
    help: "NACKs received for open transfers, by reason (protocol §4.5)",
    label: "reason",
    known: NACK_REASONS,
    read: () => stats()?.nacks,
  });
  readCounter(registry, {
    name: "ota_sent_bytes_total",
    help: "Bytes of MANIFEST, CHUNK and ERROR messages published (topic, properties, payload)",
    read: () => snap?.publishedBytes,
  });
  readCounter(registry, {
    name: "ota_errors_sent_total",
    help: 'ERRORs sent in answer to a message, by code; code="BUSY" counts BUSY answers',
    label: "code",
    known: ERROR_CODES,
    read: () => stats()?.errorsSent,
  });
  readCounter(registry, {
    name: "ota_errors_suppressed_total",
    help: "ERRORs not sent because their device was over its ERROR rate (protocol §6)",
    read: () => stats()?.errorsSuppressed,
  });
  readCounter(registry, {
    name: "ota_dropped_messages_total",
    help: "Inbound messages dropped without an answer (no usable topic to answer on)",
    read: () => stats()?.dropped,
  });
  readGauge(registry, {
    name: "ota_backlog_bytes",
    help: "Bytes handed to the broker connection and not yet written to its socket",
    read: () => snap?.backlogBytes,
  });
  return { refresh: () => void (snap = sender?.snapshot()) };
}
