/**
 * `deno task ota -- catalog gc`: collects the pieces an interrupted `image add` left in the KV
 * store. The sender does the same at start.
 * @module
 */

import { formatBytes, formatTable } from "../format/mod.ts";
import { type OrphanPieces, UPLOAD_GRACE_MS } from "../catalog/mod.ts";
import { EXIT_OK, intOption } from "../command/args.ts";
import { type Command, type Context, formatTime } from "./_command.ts";

/** The catalog maintenance commands. */
export const CATALOG_COMMANDS: Command[] = [
  {
    words: ["catalog", "gc"],
    args: [],
    summary: "delete the pieces interrupted image adds left behind",
    help: `An image add that was interrupted (killed, power lost) leaves its pieces in the KV store;
they are never visible as an image, but take space. This deletes the pieces no image owns whose
add made no progress for the grace period, so an add running in another process is never
touched. The sender does the same when it starts.

Options:
  --grace SECONDS   leave pieces alone that an add wrote less than SECONDS ago
                    (default ${UPLOAD_GRACE_MS / 1000})
  --dry-run         only report what would be deleted`,
    options: { grace: { type: "string" }, "dry-run": { type: "boolean" } },
    run: gc,
  },
];

async function gc(ctx: Context): Promise<number> {
  const graceMs = graceOf(ctx);
  const dryRun = ctx.values["dry-run"] === true;
  const report = await (await ctx.catalog()).collectGarbage({ graceMs, dryRun });
  if (ctx.json) {
    await ctx.out(JSON.stringify({ dryRun, graceMs, ...report }, null, 2));
    return EXIT_OK;
  }
  const bytes = report.collected.reduce((n, o) => n + o.bytes, 0);
  const pieces = report.collected.reduce((n, o) => n + o.pieces, 0);
  const verb = dryRun ? "Would delete" : "Deleted";
  const lines = [
    `${verb} ${pieces} pieces (${
      formatBytes(bytes)
    }) of ${report.collected.length} interrupted adds` +
    (report.staleMarks ? `, and ${report.staleMarks} stale upload marks` : ""),
  ];
  const rows: Array<[string, OrphanPieces]> = [
    ...report.collected.map((
      o,
    ): [string, OrphanPieces] => [dryRun ? "would delete" : "deleted", o]),
    ...report.held.map((o): [string, OrphanPieces] => ["kept (recent)", o]),
  ];
  if (rows.length > 0) {
    lines.push(
      "",
      formatTable(
        ["ACTION", "SHA256", "PIECES", "SIZE", "LAST PROGRESS"],
        rows.map(([action, o]) => [
          action,
          o.sha256.slice(0, 12),
          String(o.pieces),
          formatBytes(o.bytes),
          o.lastProgress ? formatTime(o.lastProgress) : "-",
        ]),
        { right: [2, 3] },
      ),
    );
  }
  await ctx.out(lines.join("\n"));
  return EXIT_OK;
}

/** Most `--grace` seconds: the catalog takes any grace whose milliseconds are a safe integer. */
const MAX_GRACE_SECONDS = Math.floor(Number.MAX_SAFE_INTEGER / 1000);

function graceOf(ctx: Context): number {
  const seconds = intOption(ctx.values.grace, "--grace", {
    min: 0,
    max: MAX_GRACE_SECONDS,
    helpFor: ["catalog", "gc"],
  });
  return seconds === undefined ? UPLOAD_GRACE_MS : seconds * 1000;
}
