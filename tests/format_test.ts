/** The shared formatting module: sizes, rates, durations, tables, fitting and escaping. */

import assert from "node:assert/strict";
import {
  escapeControl,
  fitWidth,
  formatBytes,
  formatDuration,
  formatRate,
  formatTable,
  terminalColumns,
  TransferClock,
  transferRate,
} from "../src/format/mod.ts";

Deno.test("formatBytes() uses B, KiB and MiB; formatRate() adds /s", () => {
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(262144), "256.0 KiB");
  assert.equal(formatBytes(1536 * 1024), "1.50 MiB");
  assert.equal(formatRate(128 * 1024), "128.0 KiB/s");
  assert.equal(formatRate(NaN), "-");
});

Deno.test("formatDuration() keeps short times precise and long ones readable", () => {
  assert.equal(formatDuration(0.4219), "0.42 s");
  assert.equal(formatDuration(12.34), "12.3 s");
  assert.equal(formatDuration(245), "4 min 05 s");
  assert.equal(formatDuration(7380), "2 h 03 min");
});

Deno.test("transferRate() and TransferClock measure from MANIFEST to the last ACK", () => {
  assert.equal(transferRate(1024, 2), 512);
  assert.ok(Number.isNaN(transferRate(1024, 0)));
  const c = new TransferClock();
  c.manifest(1000);
  c.acked(4096, 1500);
  c.acked(8192, 3000);
  c.manifest(3500); // a resumed MANIFEST does not restart the interval
  c.acked(8192, 5000); // no new bytes: not an ACK that moves the end
  c.end(9000); // the end after the last ACK does not count
  assert.equal(c.seconds, 2);
  assert.equal(c.rate, 4096);
});

Deno.test("formatTable() aligns columns and escapes cells so none can start a new row", () => {
  const text = formatTable(["ID", "SIZE"], [["a\nFORGED  1", "12 B"], ["bb", "1.0 KiB"]], {
    right: [1],
  });
  assert.deepEqual(text.split("\n"), [
    "ID               SIZE",
    "a\\nFORGED  1     12 B",
    "bb            1.0 KiB",
  ]);
});

Deno.test("escapeControl() makes every control character visible", () => {
  assert.equal(
    escapeControl("a\x1b[31mb\r\t\x00\x7f\x9b\u2028"),
    "a\\e[31mb\\r\\t\\x00\\x7f\\x9b\\u2028",
  );
  assert.equal(escapeControl("plain C:\\path ü"), "plain C:\\path ü");
});

Deno.test("fitWidth() cuts at the end or in the middle; terminalColumns() honours COLUMNS", () => {
  assert.equal(fitWidth("abcdef", 6), "abcdef");
  assert.equal(fitWidth("abcdefgh", 5), "abcd…");
  assert.equal(fitWidth("device-name-1", 7, "middle"), "dev…e-1");
  assert.equal(terminalColumns((n) => n === "COLUMNS" ? "80" : undefined), 80);
});
