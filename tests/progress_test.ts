/**
 * The simulator's progress output: live lines that never wrap in an 80-column terminal, and one
 * definition of a transfer's rate in the bar and the summary.
 * @module
 */

import assert from "node:assert/strict";
import { MiB, transferRate } from "../src/format/mod.ts";
import { deviceBar, formatSummary, ProgressBoard, Terminal } from "../src/sim/progress.ts";
import type { ReceiverProgress, ReceiverResult } from "../src/sim/receiver.ts";

/** A TTY terminal of `columns` that records what is written. */
function tty(columns: number) {
  const writes: string[] = [];
  return { term: new Terminal((t) => writes.push(t), true, columns), writes };
}

/** The text lines written, with cursor movement and clearing removed. */
function screenLines(writes: string[]): string[] {
  // deno-lint-ignore no-control-regex -- strips the escape sequences the terminal interprets
  return writes.join("").replace(/\x1b\[\d*[AJ]/g, "").split(/[\r\n]/).filter((l) => l !== "");
}

const progress = (p: Partial<ReceiverProgress>): ReceiverProgress => ({
  deviceId: "sim-1",
  state: "RECEIVING",
  offset: 0,
  size: 0,
  bytesWritten: 0,
  ...p,
});

Deno.test("progress bars fit an 80-column terminal, whatever the ids, sizes and rates", () => {
  const { term, writes } = tty(80);
  const board = new ProgressBoard(term);
  const devices = [
    progress({ deviceId: "a-very-long-device-identifier-from-the-field-0001" }),
    progress({ deviceId: "sim-2", size: 1500 * MiB, offset: 1499 * MiB, bytesWritten: 1499 * MiB }),
    progress({ deviceId: "sim-3", size: 1024, offset: 512, bytesWritten: 512, state: "REQUESTED" }),
  ];
  board.draw(devices, 0);
  board.draw(devices.map((p) => ({ ...p, bytesWritten: p.bytesWritten + 10 * MiB })), 1);
  term.line("a log line above the bars");
  const lines = screenLines(writes).filter((l) => l !== "a log line above the bars");
  assert.ok(lines.length >= 6);
  for (const l of lines) assert.ok(l.length <= 79, `${l.length} columns: ${l}`);
  assert.ok(lines.some((l) => l.includes("[") && l.includes("]")), "bars are drawn at 80 columns");
});

Deno.test("a many-device aggregate bar fits a 40-column terminal", () => {
  const { term, writes } = tty(40);
  const all = Array.from(
    { length: 20 },
    (_, i) => progress({ deviceId: `d${i}`, size: MiB, offset: MiB / 2, bytesWritten: MiB / 2 }),
  );
  new ProgressBoard(term).draw(all, 0);
  for (const l of screenLines(writes)) assert.ok(l.length <= 39, l);
});

Deno.test("the bar's rate is bytes acknowledged over MANIFEST to last ACK, as in the summary", () => {
  const { term, writes } = tty(120);
  const board = new ProgressBoard(term);
  board.draw([progress({ state: "REQUESTED" })], 0); // requesting: not part of the interval
  board.draw([progress({ size: MiB })], 1000); // MANIFEST seen
  board.draw([progress({ size: MiB, offset: MiB, bytesWritten: MiB })], 3000); // last ACK
  writes.length = 0;
  board.draw([progress({ size: MiB, offset: MiB, bytesWritten: MiB, state: "DONE" })], 9000);
  const rate = transferRate(MiB, 2); // 1 MiB over 2 s: 512 KiB/s
  assert.equal(rate, 512 * 1024);
  assert.match(screenLines(writes).join("\n"), / 512\.0 KiB\/s {2}DONE/);
  const result = {
    deviceId: "sim-1",
    status: "VERIFIED",
    ok: true,
    bytesWritten: MiB,
    seconds: 2,
    rateSeconds: 2,
  };
  assert.match(
    formatSummary([
      {
        chunksReceived: 0,
        chunks: 0,
        duplicates: 0,
        sha256: "",
        ...result,
      } as unknown as ReceiverResult,
    ]),
    /sim-1 +VERIFIED +1\.00 MiB +2\.00 +512\.0 KiB\/s/,
  );
});

Deno.test("a device id with control characters cannot move the cursor in a bar", () => {
  const bar = deviceBar(progress({ deviceId: "x\x1b[2Ay\nz" }), NaN, 79);
  // deno-lint-ignore no-control-regex -- the point: no raw control character in the line
  assert.doesNotMatch(bar, /[\x00-\x1f]/);
  assert.match(bar, /^x\\e\[2Ay\\nz/);
});
