/**
 * `deno task ota -- fleet`: devices per product and running version, and how many are online
 * now, from the counts the inventory keeps (`src/ops/fleet.ts`); `--recount` counts the whole
 * inventory again first (a repair; a KV written before the counts existed is counted once on
 * its own). This file only parses and prints.
 * @module
 */

import { formatTable } from "../format/mod.ts";
import { EXIT_OK } from "../command/args.ts";
import { fleetSummary, ONLINE_WINDOW_MS } from "../ops/fleet.ts";
import type { Command, Context } from "./_command.ts";

/** The `fleet` command. */
export const FLEET_COMMANDS: Command[] = [
  {
    words: ["fleet"],
    args: [],
    summary: "count devices per product and running version, and those online now",
    help: `Options:
  --recount     count every device of the inventory again and store the counts (a repair;
                reads the whole inventory)

Online means seen (a REQUEST or a STATUS) within the last ${ONLINE_WINDOW_MS / 60_000} minutes.`,
    options: { recount: { type: "boolean" } },
    run: fleet,
  },
];

async function fleet(ctx: Context): Promise<number> {
  const summary = await fleetSummary(await ctx.catalog(), { recount: ctx.values.recount === true });
  if (ctx.json) {
    await ctx.out(JSON.stringify(summary, null, 2));
    return EXIT_OK;
  }
  const rows = summary.products.flatMap((p) =>
    p.versions.map((v) => [p.product || "-", v.version || "-", `${v.devices}`, `${v.online}`])
  );
  const table = rows.length === 0
    ? "No devices"
    : formatTable(["PRODUCT", "VERSION", "DEVICES", "ONLINE"], rows);
  await ctx.out(`${table}\n${summary.devices} devices, ${summary.online} online`);
  return EXIT_OK;
}
