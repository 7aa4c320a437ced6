/**
 * Flash sinks of the simulated receiver: where a device writes the image it receives. A sink
 * plays the OTA partition of an ESP32: written strictly in order, read back to rehash the bytes
 * below a resume offset (docs/protocol.md §9), and kept across a reconnect so a transfer can
 * resume. The memory sink is the default; the file sink writes `<dir>/<device>.bin` so the
 * bytes can be inspected after a run.
 * @module
 */

/** What the receiver needs from its flash. */
export interface FlashSink {
  /** Prepares a slot for an image of `size` bytes; keeps the bytes below `keep` (a resume). */
  begin(size: number, keep: number): Promise<void>;
  /** Writes `bytes` at `offset`; may throw (the receiver NACKs `FLASH_WRITE_FAILED`). */
  write(offset: number, bytes: Uint8Array): Promise<void>;
  /** Reads `length` bytes at `offset` (to rehash the bytes kept by a resume). */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Releases what the sink holds open; the written bytes stay readable for a memory sink. */
  close(): Promise<void>;
}

/** A sink in memory; `bytes()` returns what was written. */
export class MemorySink implements FlashSink {
  private buf = new Uint8Array(0);

  /** Grows or shrinks the slot to `size`, keeping the first `keep` bytes. */
  begin(size: number, keep: number): Promise<void> {
    if (this.buf.length !== size) {
      const next = new Uint8Array(size);
      next.set(this.buf.subarray(0, Math.min(keep, size, this.buf.length)));
      this.buf = next;
    }
    return Promise.resolve();
  }

  /** Copies `bytes` into the slot. */
  write(offset: number, bytes: Uint8Array): Promise<void> {
    if (offset + bytes.length > this.buf.length) {
      return Promise.reject(
        new RangeError(
          `Cannot write flash: ${bytes.length} bytes at ${offset} run past the slot of ${this.buf.length}`,
        ),
      );
    }
    this.buf.set(bytes, offset);
    return Promise.resolve();
  }

  /** A copy of `length` bytes at `offset`. */
  read(offset: number, length: number): Promise<Uint8Array> {
    return Promise.resolve(this.buf.slice(offset, offset + length));
  }

  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  /** The whole slot. */
  bytes(): Uint8Array {
    return this.buf;
  }
}

/** A sink writing one file; the file is kept after the run. */
export class FileSink implements FlashSink {
  private file: Deno.FsFile | null = null;

  /** Writes to `path` (created when missing). */
  constructor(readonly path: string) {}

  /** Opens the file and sets its length to `size`, keeping the first `keep` bytes. */
  async begin(size: number, keep: number): Promise<void> {
    this.file ??= await Deno.open(this.path, { read: true, write: true, create: true });
    if (keep === 0) await this.file.truncate(0);
    await this.file.truncate(size);
  }

  /** Writes `bytes` at `offset`. */
  async write(offset: number, bytes: Uint8Array): Promise<void> {
    const f = this.open();
    await f.seek(offset, Deno.SeekMode.Start);
    let done = 0;
    while (done < bytes.length) done += await f.write(bytes.subarray(done));
  }

  /** Reads `length` bytes at `offset`. */
  async read(offset: number, length: number): Promise<Uint8Array> {
    const f = this.open();
    await f.seek(offset, Deno.SeekMode.Start);
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = await f.read(out.subarray(done));
      if (n === null) break;
      done += n;
    }
    return out.subarray(0, done);
  }

  /** Closes the file. */
  close(): Promise<void> {
    this.file?.close();
    this.file = null;
    return Promise.resolve();
  }

  private open(): Deno.FsFile {
    if (!this.file) throw new Error(`Cannot use flash file "${this.path}": begin() was not called`);
    return this.file;
  }
}
