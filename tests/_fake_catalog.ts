/**
 * A catalog stand-in with one 5000-byte image for the sender's unit tests over the in-memory
 * broker (the real catalog is tested in catalog_test.ts and everywhere a KV file is used).
 * @module
 */
import type { ImageMeta, TransferRecord } from "../src/catalog/mod.ts";
import { toHex } from "../src/protocol/mod.ts";
import type { SenderCatalog } from "../src/sender/mod.ts";

/** The stand-in: a {@link SenderCatalog} that keeps what the sender records. */
export type FakeCatalog = SenderCatalog & { transfers: TransferRecord[]; statuses: unknown[] };

/**
 * A catalog holding `image` as `blink@1.1.0` (kind file), found for `latest`, the empty version
 * and `1.1.0`; it records transfers and statuses in memory.
 */
export async function fakeCatalog(image: Uint8Array): Promise<FakeCatalog & { sha: string }> {
  const sha = toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(image))));
  const meta: ImageMeta = {
    addedAt: "2026-01-01T00:00:00.000Z",
    sha256: sha,
    name: "fw.bin",
    product: "blink",
    version: "1.1.0",
    size: image.length,
    kind: "file",
  };
  const catalog: FakeCatalog & { sha: string } = {
    sha,
    transfers: [],
    statuses: [],
    get: (s) => Promise.resolve(s === sha ? meta : null),
    resolve: (product, version) =>
      Promise.resolve(
        product === "blink" && (!version || version === "latest" || version === "1.1.0")
          ? meta
          : null,
      ),
    readImage: () => Promise.resolve(image),
    recordTransfer(r) {
      this.transfers.push(r);
      return Promise.resolve();
    },
    recordDeviceStatus(r) {
      this.statuses.push(r);
      return Promise.resolve();
    },
  };
  return catalog;
}
