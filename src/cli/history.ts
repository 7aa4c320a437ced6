/**
 * `deno task ota -- transfers|devices reports`: the transfer and device-status history the sender
 * records. This file only parses and prints; the operations are in `src/ops/transfers.ts`.
 * Device ids and details come from devices and are escaped before they are printed.
 * @module
 */

import {
  formatBytes,
  formatDuration,
  formatRate,
  formatTable,
  transferRate,
} from "../format/mod.ts";
import { INTERRUPTED_OUTCOME, OPEN_OUTCOME, SENDER_LOST_OUTCOME } from "../catalog/mod.ts";
import { EXIT_OK, intOption } from "../command/args.ts";
import {
  DEFAULT_HISTORY_ROWS,
  deviceReports,
  MAX_HISTORY_ROWS,
  recentTransfers,
} from "../ops/transfers.ts";
import { type Command, type Context, formatTime } from "./_command.ts";
import { SHORT_SHA_CHARS } from "./image.ts";

/** The history commands. */
export const HISTORY_COMMANDS: Command[] = [
  {
    words: ["transfers"],
    args: [],
    summary: "list recent transfers, newest first",
    help: `Options:
  --limit N     show at most N finished transfers (default ${DEFAULT_HISTORY_ROWS})

Transfers still open come first, with OUTCOME ${OPEN_OUTCOME} (also those of a sender that was
killed; it records them as ${INTERRUPTED_OUTCOME} when it starts again under the same sender id,
and a running sender records them as ${SENDER_LOST_OUTCOME} a minute after the killed one stopped).
RATE is the bytes sent divided by the seconds from MANIFEST to the last ACK or the end.`,
    options: { limit: { type: "string" } },
    run: transfers,
  },
  {
    words: ["devices", "reports"],
    args: [],
    summary: "list recent device STATUS reports of every device, newest first",
    help: `Options:
  --limit N     show at most N reports (default ${DEFAULT_HISTORY_ROWS})`,
    options: { limit: { type: "string" } },
    run: devices,
  },
];

async function transfers(ctx: Context): Promise<number> {
  const records = await recentTransfers(await ctx.catalog(), limitOf(ctx, ["transfers"]));
  return await printRecords(ctx, records, "No transfers recorded yet", () =>
    formatTable(
      ["ENDED", "DEVICE", "IMAGE", "OUTCOME", "ACKED", "TIME", "RATE", "RESENDS", "SENDER"],
      records.map((t) => [
        t.outcome === OPEN_OUTCOME ? "-" : formatTime(t.endedAt),
        t.deviceId,
        `${t.product}@${t.version}`,
        t.outcome,
        formatBytes(t.bytes),
        formatDuration(t.seconds),
        formatRate(transferRate(t.bytes, t.seconds)),
        String(t.resends),
        t.senderId,
      ]),
      { right: [4, 5, 6, 7] },
    ));
}

async function devices(ctx: Context): Promise<number> {
  const records = await deviceReports(await ctx.catalog(), limitOf(ctx, ["devices", "reports"]));
  return await printRecords(
    ctx,
    records,
    "No device status reports recorded yet",
    () =>
      formatTable(
        ["AT", "DEVICE", "STATUS", "VERSION", "SHA256", "DETAIL"],
        records.map((d) => [
          formatTime(d.at),
          d.deviceId,
          d.status,
          d.version,
          d.sha256.slice(0, SHORT_SHA_CHARS),
          d.detail,
        ]),
      ),
  );
}

/** Prints records as JSON (`--json`), as `empty` when there are none, else as `table()`. */
async function printRecords(
  ctx: Context,
  records: unknown[],
  empty: string,
  table: () => string,
): Promise<number> {
  if (ctx.json) await ctx.out(JSON.stringify(records, null, 2));
  else await ctx.out(records.length === 0 ? empty : table());
  return EXIT_OK;
}

function limitOf(ctx: Context, words: string[]): number {
  const limit = intOption(ctx.values.limit, "--limit", {
    min: 1,
    max: MAX_HISTORY_ROWS,
    helpFor: words,
  });
  return limit ?? DEFAULT_HISTORY_ROWS;
}
