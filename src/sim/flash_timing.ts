/**
 * How long flash takes, as a wrapper around a {@link FlashSink}: erasing a sector the first
 * time a write reaches it, and programming bytes. Without it a simulated device writes at
 * memory speed; with {@link ESP32_FLASH_TIMING} it writes like the SPI NOR flash of an ESP32,
 * which is what the sender's resend floor (MIN_RESEND_TIMEOUT_MS, protocol §6/§8) must tolerate.
 * @module
 */

import { FLASH_SECTOR_BYTES } from "../protocol/limits.ts";
import { realClock, type SimClock } from "./clock.ts";
import type { FlashSink } from "./sink.ts";

/** Flash timing: erase per sector and program per 4 KiB. */
export interface FlashTiming {
  /** Time to erase one FLASH_SECTOR_BYTES sector, in ms. */
  eraseSectorMs: number;
  /** Time to program 4096 bytes, in ms (scaled to the bytes written). */
  program4KiBMs: number;
}

/**
 * Typical ESP32 SPI NOR flash (4 KiB sector erase about 45 ms, page programming about 10 ms per
 * 4 KiB, as the flash datasheets give them; the worst-case erase is about 300 ms). A 1 MiB image
 * takes about 14 s to write.
 */
export const ESP32_FLASH_TIMING: FlashTiming = { eraseSectorMs: 45, program4KiBMs: 10 };

/** Timing of a flash that programs at `kibPerSecond` and needs no erase (the `slowFlashKiBps` fault). */
export function flashAtRate(kibPerSecond: number): FlashTiming {
  return { eraseSectorMs: 0, program4KiBMs: (4 / kibPerSecond) * 1000 };
}

/**
 * A sink whose writes take as long as `timing` says: a write first erases every sector it
 * reaches that was not erased since `begin`, then programs its bytes. The flash keeps its own
 * clock (busy-until), so timer granularity does not slow it below the modelled rate.
 */
export class TimedSink implements FlashSink {
  private erasedUpTo = 0;
  private busyUntil = 0;

  /** Wraps `inner`; `clock` is the device's. */
  constructor(
    private readonly inner: FlashSink,
    private readonly timing: FlashTiming,
    private readonly clock: SimClock = realClock,
  ) {}

  /** Begins on the inner sink; a resume keeps the sectors below `keep` (they hold data). */
  begin(size: number, keep: number): Promise<void> {
    this.erasedUpTo = Math.ceil(keep / FLASH_SECTOR_BYTES) * FLASH_SECTOR_BYTES;
    return this.inner.begin(size, keep);
  }

  /** Erases what the write newly reaches, programs it, then writes to the inner sink. */
  async write(offset: number, bytes: Uint8Array): Promise<void> {
    const end = offset + bytes.length;
    let ms = (bytes.length / 4096) * this.timing.program4KiBMs;
    while (this.erasedUpTo < end) {
      ms += this.timing.eraseSectorMs;
      this.erasedUpTo += FLASH_SECTOR_BYTES;
    }
    const now = this.clock.now();
    this.busyUntil = Math.max(now, this.busyUntil) + ms;
    if (this.busyUntil - now >= 1) await this.clock.sleep(this.busyUntil - now);
    await this.inner.write(offset, bytes);
  }

  /** Reads from the inner sink (reads are fast on NOR flash). */
  read(offset: number, length: number): Promise<Uint8Array> {
    return this.inner.read(offset, length);
  }

  /** Closes the inner sink. */
  close(): Promise<void> {
    return this.inner.close();
  }
}
