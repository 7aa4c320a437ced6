/**
 * `deno task ota -- rollout create|list|show|pause|resume|cancel`: staged rollouts of a
 * catalogued image to a fleet (docs/rollouts.md). This file only parses and prints; every
 * operation is one function of `src/ops/rollouts.ts`.
 * @module
 */

import { formatDuration, formatPairs, formatTable } from "../format/mod.ts";
import { EXIT_OK, intOption, UsageError } from "../command/args.ts";
import {
  commandRollout,
  createRollout,
  DEFAULT_LISTED_ROLLOUTS,
  listRollouts,
  MAX_LISTED_ROLLOUTS,
  showRollout,
} from "../ops/rollouts.ts";
import {
  DEFAULT_ABORT_FAILURE_PCT,
  DEFAULT_ABORT_MIN_DEVICES,
  DEFAULT_RETRIES,
  DEFAULT_SUCCESS_PCT,
  DEVICE_STATES,
  MAX_ABORT_MIN_DEVICES,
  MAX_PCT,
  MAX_RETRIES,
  MIN_ABORT_MIN_DEVICES,
  MIN_SUCCESS_PCT,
  type RolloutCommand,
  type RolloutRecord,
  type RolloutSummary,
} from "../rollout/mod.ts";
import { type Command, type Context, formatTime, INVOKE } from "./_command.ts";
import { SHORT_SHA_CHARS } from "./image.ts";

const CREATE_HELP = `Options:
  --image REF               image to deliver: product@version or a SHA-256 prefix (required)
  --group G                 target devices labelled G (repeat for several groups)
  --devices ID,ID           target these devices by id
                            (neither --group nor --devices: every device of the product)
  --waves 1,10,50,100       cumulative percentages of the target, last one 100 (default 100)
  --success-pct N           share of a wave that must succeed before the next (default ${DEFAULT_SUCCESS_PCT})
  --abort-failure-pct N     abort when failures exceed N % of outcomes (default ${DEFAULT_ABORT_FAILURE_PCT})
  --abort-min-devices N     ...after at least N outcomes (default ${DEFAULT_ABORT_MIN_DEVICES})
  --device-timeout 30m      time from offer to outcome per device (default 30m)
  --retries N               further attempts after a failed or timed out one (default ${DEFAULT_RETRIES})
  --jitter 60s              longest random delay a device waits after an offer (default 60s)

The rollout starts at once: the sender offers the image to the first wave and opens the next
when the success share is reached. Label devices with "${INVOKE} devices label ID --group G".`;

const ID_HELP = `<id> is a rollout id such as r-1 ("${INVOKE} rollout list" shows them).`;

const COMMAND_HELP = `${ID_HELP}

Options:
  --reason TEXT   why, kept in the rollout's log`;

/** The `rollout` commands. */
export const ROLLOUT_COMMANDS: Command[] = [
  {
    words: ["rollout", "create"],
    args: [],
    summary: "roll an image out to a fleet in waves, with automatic abort",
    help: CREATE_HELP,
    options: {
      image: { type: "string" },
      group: { type: "string", multiple: true },
      devices: { type: "string" },
      waves: { type: "string" },
      "success-pct": { type: "string" },
      "abort-failure-pct": { type: "string" },
      "abort-min-devices": { type: "string" },
      "device-timeout": { type: "string" },
      retries: { type: "string" },
      jitter: { type: "string" },
    },
    run: rolloutCreate,
  },
  {
    words: ["rollout", "list"],
    args: [],
    summary: "list the newest rollouts, oldest of them first",
    help: `Options:
  --limit N     show the newest N rollouts, 1..${MAX_LISTED_ROLLOUTS} (default ${DEFAULT_LISTED_ROLLOUTS})

Shows each rollout's state, open wave and device outcomes.`,
    options: { limit: { type: "string" } },
    run: rolloutList,
  },
  {
    words: ["rollout", "show"],
    args: ["id"],
    summary: "show a rollout: waves, devices per state, what happens next, its log",
    help: ID_HELP,
    options: {},
    run: rolloutShow,
  },
  commandOf("pause", "stop offering the image; transfers under way finish"),
  commandOf("resume", "continue a paused rollout"),
  commandOf("cancel", "end a rollout; updated devices stay as they are"),
];

function commandOf(command: RolloutCommand, summary: string): Command {
  return {
    words: ["rollout", command],
    args: ["id"],
    summary,
    help: COMMAND_HELP,
    options: { reason: { type: "string" } },
    run: async (ctx) => {
      const record = await commandRollout(await ctx.catalog(), ctx.positionals[0], command, {
        reason: ctx.values.reason as string | undefined,
      });
      if (ctx.json) await ctx.out(JSON.stringify(record, null, 2));
      else await ctx.out(`Rollout ${record.id} is ${record.state}`);
      return EXIT_OK;
    },
  };
}

/** Reads whole-number option `name` of `rollout create`, within the bounds the spec accepts. */
function wholeNumber(ctx: Context, name: string, min: number, max: number): number | undefined {
  return intOption(ctx.values[name], `--${name}`, { min, max, helpFor: ["rollout", "create"] });
}

async function rolloutCreate(ctx: Context): Promise<number> {
  const v = ctx.values;
  const image = v.image as string | undefined;
  if (image === undefined) {
    throw new UsageError(
      "missing --image (product@version or a SHA-256 prefix)",
      ["rollout", "create"],
    );
  }
  const devices = v.devices as string | undefined;
  const record = await createRollout(await ctx.catalog(), {
    image,
    groups: (v.group as unknown as string[] | undefined) ?? [],
    devices: devices === undefined ? [] : devices.split(",").map((d) => d.trim()),
    waves: v.waves as string | undefined,
    successPct: wholeNumber(ctx, "success-pct", MIN_SUCCESS_PCT, MAX_PCT),
    abortFailurePct: wholeNumber(ctx, "abort-failure-pct", 0, MAX_PCT),
    abortMinDevices: wholeNumber(
      ctx,
      "abort-min-devices",
      MIN_ABORT_MIN_DEVICES,
      MAX_ABORT_MIN_DEVICES,
    ),
    deviceTimeout: v["device-timeout"] as string | undefined,
    retries: wholeNumber(ctx, "retries", 0, MAX_RETRIES),
    jitter: v.jitter as string | undefined,
  });
  if (ctx.json) {
    await ctx.out(JSON.stringify(record, null, 2));
  } else {
    await ctx.out(
      `Rollout ${record.id} is ${record.state}: ${describe(record)}\n` +
        `Follow it with: ${INVOKE} rollout show ${record.id}`,
    );
  }
  return EXIT_OK;
}

function describe(r: RolloutRecord): string {
  const t = r.target;
  const target = t.groups.length === 0 && t.devices.length === 0 ? `every ${t.product} device` : [
    t.groups.length > 0 ? `groups ${t.groups.join(", ")}` : "",
    t.devices.length > 0 ? `devices ${t.devices.join(", ")}` : "",
  ].filter((s) => s !== "").join(" and ");
  return `${r.image.product}@${r.image.version} to ${target}, waves ${r.waves.join(",")} %`;
}

/** Devices of a summary still in an attempt (queued, offered, downloading, verified). */
function inProgress(s: RolloutSummary): number {
  return s.totals.QUEUED + s.totals.OFFERED + s.totals.DOWNLOADING + s.totals.VERIFIED;
}

async function rolloutList(ctx: Context): Promise<number> {
  const limit = intOption(ctx.values.limit, "--limit", {
    min: 1,
    max: MAX_LISTED_ROLLOUTS,
    helpFor: ["rollout", "list"],
  });
  const rows = await listRollouts(await ctx.catalog(), limit);
  if (ctx.json) {
    await ctx.out(JSON.stringify(rows, null, 2));
  } else if (rows.length === 0) {
    await ctx.out(`No rollouts. Start one with: ${INVOKE} rollout create --image product@version`);
  } else {
    await ctx.out(formatTable(
      [
        "ID",
        "STATE",
        "IMAGE",
        "TARGET",
        "WAVE",
        "ACTIVE",
        "SUCCEEDED",
        "FAILED",
        "TIMED_OUT",
        "CREATED",
      ],
      rows.map(({ summary: s, createdAt }) => [
        s.id,
        s.state,
        s.image,
        s.target,
        `${s.currentWave}/${s.waves.length}`,
        inProgress(s),
        s.totals.SUCCEEDED,
        s.totals.FAILED,
        s.totals.TIMED_OUT,
        formatTime(createdAt),
      ]),
      { right: [5, 6, 7, 8] },
    ));
  }
  return EXIT_OK;
}

async function rolloutShow(ctx: Context): Promise<number> {
  const d = await showRollout(await ctx.catalog(), ctx.positionals[0]);
  if (ctx.json) {
    await ctx.out(JSON.stringify(d, null, 2));
    return EXIT_OK;
  }
  const s = d.summary;
  const c = d.settings;
  const pairs: [string, string][] = [
    ["rollout", s.id],
    ["image", `${s.image} (${s.sha256.slice(0, SHORT_SHA_CHARS)})`],
    ["target", s.target],
    ["state", s.reason === "" ? s.state : `${s.state}: ${s.reason}`],
    ["wave", `${s.currentWave} of ${s.waves.length}`],
    ["next", s.next],
    [
      "rules",
      `next wave at ${c.successPct} % success; abort above ${c.abortFailurePct} % failures ` +
      `after ${c.abortMinDevices} outcomes (now ${s.outcomes.failures}/${s.outcomes.outcomes})`,
    ],
    [
      "devices",
      `timeout ${formatDuration(c.deviceTimeoutMs / 1000)}, ${c.retries} retries, ` +
      `jitter ${formatDuration(c.jitterMs / 1000)}`,
    ],
  ];
  const waves = formatTable(
    ["WAVE", "PCT", "OPENED", ...DEVICE_STATES],
    s.waves.map((w) => [
      w.wave,
      `${w.pct} %`,
      w.openedAt === null ? "-" : formatTime(w.openedAt),
      ...DEVICE_STATES.map((st) => w.devices[st]),
    ]),
    { right: [0, 1, 3, 4, 5, 6, 7, 8, 9], indent: "  " },
  );
  const log = formatTable(
    ["AT", "EVENT", "STATE", "WAVE"],
    d.log.map((l) => [formatTime(l.at), l.event, l.state, l.wave + 1]),
    { indent: "  " },
  );
  const updated = d.succeeded.length === 0
    ? "  (none yet)"
    : `  ${d.succeeded.join(" ")}${d.moreSucceeded ? " …" : ""}`;
  await ctx.out(
    `${formatPairs(pairs)}\n\nWaves:\n${waves}\n\nUpdated devices (SUCCEEDED):\n${updated}\n\n` +
      `Log:\n${log}`,
  );
  return EXIT_OK;
}
