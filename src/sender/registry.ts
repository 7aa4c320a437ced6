/**
 * The open transfers of a sender, by transfer id and by device (one per device: a new request
 * supersedes the old transfer, protocol §7).
 * @module
 */

import type { Transfer } from "./transfer.ts";

/** Open transfers by id and by device. */
export class TransferRegistry {
  readonly #byId = new Map<number, Transfer>();
  readonly #byDevice = new Map<string, Transfer>();

  /** Open transfers; `onAdd` is called after each one is added (the sender's timer wakes). */
  constructor(readonly onAdd: () => void = () => {}) {}

  /** Open transfers. */
  get size(): number {
    return this.#byId.size;
  }

  /** Entries of the maps by transfer id and by device, for tests counting per-device state. */
  get perDeviceEntries(): Record<string, number> {
    return { transfersById: this.#byId.size, transfersByDevice: this.#byDevice.size };
  }

  /** Every open transfer. */
  all(): Transfer[] {
    return [...this.#byId.values()];
  }

  /** The open transfer `transferId` of `deviceId`, or undefined (also when another device's). */
  get(transferId: number, deviceId: string): Transfer | undefined {
    const t = this.#byId.get(transferId);
    return t && t.deviceId === deviceId ? t : undefined;
  }

  /** The device's open transfer, or undefined. */
  ofDevice(deviceId: string): Transfer | undefined {
    return this.#byDevice.get(deviceId);
  }

  /** Adds an opened transfer; it becomes its device's transfer. */
  add(t: Transfer): void {
    this.#byId.set(t.id, t);
    this.#byDevice.set(t.deviceId, t);
    this.onAdd();
  }

  /** Removes a closed transfer; returns it, or undefined when it was not open. */
  remove(transferId: number): Transfer | undefined {
    const t = this.#byId.get(transferId);
    if (!t) return undefined;
    this.#byId.delete(transferId);
    if (this.#byDevice.get(t.deviceId) === t) this.#byDevice.delete(t.deviceId);
    return t;
  }

  /** A random non-zero transfer id no open transfer has. */
  newId(): number {
    for (;;) {
      const id = crypto.getRandomValues(new Uint32Array(1))[0];
      if (id !== 0 && !this.#byId.has(id)) return id;
    }
  }
}
