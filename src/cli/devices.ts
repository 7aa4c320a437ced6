/**
 * `deno task ota -- devices list|show|label|reports`: the device inventory (one record per
 * device, filters, a bounded history) and the STATUS reports the sender recorded. This file
 * only parses and prints; the operations are in `src/ops/devices.ts`. Device-supplied strings
 * are escaped by the table and pair formatters.
 * @module
 */

import { formatPairs, formatTable } from "../format/mod.ts";
import { EXIT_OK, intOption, UsageError } from "../command/args.ts";
import { labelDevice, listDevices, showDevice } from "../ops/devices.ts";
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from "../rollout/mod.ts";
import type { DeviceRecord } from "../inventory/mod.ts";
import { type Command, type Context, formatTime, INVOKE } from "./_command.ts";

/** The `devices` commands of the inventory (`devices reports` lives in history.ts). */
export const DEVICE_COMMANDS: Command[] = [
  {
    words: ["devices", "list"],
    args: [],
    summary: "list devices of the inventory, filtered, one page at a time",
    help: `Options:
  --product P     only devices of product P
  --group G       only devices labelled G
  --version V     only devices running version V
  --state S       only devices in state S of the rollout holding them
                  (QUEUED, OFFERED, DOWNLOADING, VERIFIED, SUCCEEDED, FAILED, TIMED_OUT)
  --limit N       devices per page, 1..${MAX_PAGE_SIZE} (default ${DEFAULT_PAGE_SIZE})
  --cursor ID     continue after this device (printed at the end of a page)

A page may hold fewer devices than --limit and still be followed by another: keep passing
--cursor until none is printed.`,
    options: {
      product: { type: "string" },
      group: { type: "string" },
      version: { type: "string" },
      state: { type: "string" },
      limit: { type: "string" },
      cursor: { type: "string" },
    },
    run: devicesList,
  },
  {
    words: ["devices", "show"],
    args: ["id"],
    summary: "show one device: its record and its recent history",
    help: `<id> is a device id ("${INVOKE} devices list" shows them).`,
    options: {},
    run: devicesShow,
  },
  {
    words: ["devices", "label"],
    args: ["id"],
    summary: "add or remove a device's groups (rollouts can target groups)",
    help: `Options:
  --group G          add group G (repeat for several)
  --remove-group G   remove group G (repeat for several)`,
    options: {
      group: { type: "string", multiple: true },
      "remove-group": { type: "string", multiple: true },
    },
    run: devicesLabel,
  },
];

async function devicesList(ctx: Context): Promise<number> {
  const v = ctx.values;
  const limit = intOption(v.limit, "--limit", {
    min: 1,
    max: MAX_PAGE_SIZE,
    helpFor: ["devices", "list"],
  });
  const page = await listDevices(await ctx.catalog(), {
    product: v.product as string | undefined,
    group: v.group as string | undefined,
    version: v.version as string | undefined,
    state: v.state as string | undefined,
  }, {
    cursor: v.cursor as string | undefined,
    limit,
  });
  if (ctx.json) {
    await ctx.out(JSON.stringify(page, null, 2));
    return EXIT_OK;
  }
  const table = page.devices.length === 0 ? "No devices on this page" : formatTable(
    ["DEVICE", "PRODUCT", "VERSION", "GROUPS", "ROLLOUT", "STATE", "LAST SEEN"],
    page.devices.map((d) => [
      d.id,
      d.product,
      d.version,
      d.groups.join(",") || "-",
      d.rollout?.id ?? "-",
      d.rollout?.state ?? "-",
      formatTime(d.lastSeen),
    ]),
  );
  const more = page.cursor === undefined ? "" : `\nMore: add --cursor ${page.cursor}`;
  await ctx.out(`${table}${more}`);
  return EXIT_OK;
}

function recordPairs(r: DeviceRecord): [string, string][] {
  const t = r.lastTransfer;
  return [
    ["device", r.id],
    ["product", r.product || "-"],
    ["version", r.version || "-"],
    ["groups", r.groups.join(", ") || "-"],
    ["rollout", r.rollout === null ? "-" : `${r.rollout.id}: ${r.rollout.state}`],
    ["first seen", formatTime(r.firstSeen)],
    ["last seen", formatTime(r.lastSeen)],
    [
      "last transfer",
      t === null
        ? "-"
        : `${t.version} ${t.outcome}, ${t.bytes} bytes in ${t.seconds} s at ${formatTime(t.at)}`,
    ],
  ];
}

async function devicesShow(ctx: Context): Promise<number> {
  const d = await showDevice(await ctx.catalog(), ctx.positionals[0]);
  if (ctx.json) {
    await ctx.out(JSON.stringify(d, null, 2));
    return EXIT_OK;
  }
  const history = d.history.length === 0 ? "  (none)" : formatTable(
    ["AT", "KIND", "WHAT"],
    d.history.map((h) => [formatTime(h.at), h.kind, h.text]),
    { indent: "  " },
  );
  await ctx.out(`${formatPairs(recordPairs(d.record))}\n\nHistory:\n${history}`);
  return EXIT_OK;
}

async function devicesLabel(ctx: Context): Promise<number> {
  const add = (ctx.values.group as unknown as string[] | undefined) ?? [];
  const remove = (ctx.values["remove-group"] as unknown as string[] | undefined) ?? [];
  if (add.length === 0 && remove.length === 0) {
    throw new UsageError("give --group G to add or --remove-group G to remove", [
      "devices",
      "label",
    ]);
  }
  const record = await labelDevice(await ctx.catalog(), ctx.positionals[0], { add, remove });
  if (ctx.json) await ctx.out(JSON.stringify(record, null, 2));
  else {await ctx.out(
      formatPairs([["device", record.id], ["groups", record.groups.join(", ") || "-"]]),
    );}
  return EXIT_OK;
}
