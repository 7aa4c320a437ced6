/**
 * Image operations, one function each, shared by the CLI (`image add|list|show|rm`) and the HTTP
 * API (`/api/images`): add (with the catalog's admission checks and, on request, a release to the
 * whole product), list, show and remove. Plain data in and out; callers only parse their input
 * and print or serialise. Errors are {@linkcode CatalogError}s and {@linkcode RolloutError}s whose
 * messages say what to do next.
 *
 * @module
 */

import {
  type AddImageOptions,
  type Catalog,
  CatalogError,
  type ImageMeta,
  parseSemver,
} from "../catalog/mod.ts";
import { RolloutError, type RolloutRecord } from "../rollout/mod.ts";
import { releaseImage } from "./rollouts.ts";

/** What a semantic version looks like, for the warning of an add. */
export const SEMVER_HINT = "MAJOR.MINOR.PATCH such as 1.4.2, 2.0.0-rc.1 or v1.4.2";

/** True when `version` is a semantic version, optionally with a leading `v`. */
export function isSemver(version: string): boolean {
  return parseSemver(version.replace(/^[vV](?=\d)/, "")) !== null;
}

/** What {@linkcode addImage} is asked to do besides storing the bytes. */
export interface AddImageOpOptions extends AddImageOptions {
  /** Also start a one-wave rollout of the image to every device of its product. */
  release?: boolean;
}

/** What {@linkcode addImage} returns. */
export interface AddedImage {
  /** The stored image. */
  image: ImageMeta;
  /** The rollout that releases it, when `release` was asked for. */
  rollout?: RolloutRecord;
  /** Things the operator should know (e.g. a version that is not semantic); may be empty. */
  warnings: string[];
}

/**
 * Adds an image with the catalog's checks and, with `release`, releases it to every device of
 * its product. All or nothing: when the release fails (another rollout holds the product), the
 * image is removed again and the refusal says so, so a failed add leaves no image behind.
 * Throws what {@linkcode Catalog.addImage} and {@linkcode releaseImage} throw.
 */
export async function addImage(
  catalog: Catalog,
  bytes: Uint8Array,
  options: AddImageOpOptions = {},
): Promise<AddedImage> {
  const { release, ...add } = options;
  const image = await catalog.addImage(bytes, add);
  const warnings = isSemver(image.version) ? [] : [
    `version "${image.version}" is not a semantic version (${SEMVER_HINT}); "latest" ranks it ` +
    `below every semantic version, so devices asking for latest may not get it`,
  ];
  if (release !== true) return { image, warnings };
  try {
    return { image, rollout: await releaseImage(catalog, image), warnings };
  } catch (e) {
    const removal = await catalog.remove(image.sha256).then(() => null, (r: Error) => r);
    if (!(e instanceof RolloutError)) throw e;
    const why = e.message.replace(/^Cannot create rollout: /, "");
    if (removal !== null) {
      throw new RolloutError(
        e.code,
        `Added ${image.product}@${image.version} (sha256 ${image.sha256}) but did not release ` +
          `it, and removing it again failed (${removal.message}): ${why}`,
        { cause: e },
      );
    }
    throw new RolloutError(
      e.code,
      `Cannot add ${image.product}@${image.version} with a release, so it was not added: ${why}` +
        `; or add it without the release and create a rollout later`,
      { cause: e },
    );
  }
}

/** Every image, or those of one product, by product then newest version first. */
export async function listImages(catalog: Catalog, product?: string): Promise<ImageMeta[]> {
  return await catalog.list(product);
}

/**
 * One image by reference (a SHA-256, a unique prefix of at least 8 hex digits, or
 * `product@version`); `NOT_FOUND` when nothing matches.
 */
export async function showImage(catalog: Catalog, ref: string): Promise<ImageMeta> {
  const meta = await catalog.find(ref);
  if (meta === null) {
    throw new CatalogError("NOT_FOUND", `Cannot show image: no image matches "${ref}"`);
  }
  return meta;
}

/** Removes an image and its stored bytes; returns what was removed (`NOT_FOUND` otherwise). */
export async function removeImage(catalog: Catalog, ref: string): Promise<ImageMeta> {
  return await catalog.remove(ref);
}
