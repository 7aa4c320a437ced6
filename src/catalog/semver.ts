/**
 * Semantic versions (https://semver.org, 2.0.0): parsing and precedence, and the catalog's total
 * order over arbitrary version strings, which decides what "latest" means.
 *
 * @module
 */

/** A parsed semantic version. `prerelease` identifiers keep their type (number or string). */
export interface SemVer {
  /** Major version. */
  major: number;
  /** Minor version. */
  minor: number;
  /** Patch version. */
  patch: number;
  /** Pre-release identifiers (`1.0.0-rc.1` → `["rc", 1]`); empty for a release. */
  prerelease: (string | number)[];
  /** Build metadata identifiers; ignored by precedence. */
  build: string[];
}

const NUMERIC = /^(0|[1-9]\d*)$/;
const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$/;

/**
 * Parses a strict semantic version (`1.2.3`, `1.2.3-rc.1+build.5`). Returns `null` for anything
 * else, including a leading `v`; {@linkcode compareVersions} is the lenient one.
 */
export function parseSemver(text: string): SemVer | null {
  const m = SEMVER.exec(text);
  if (!m) return null;
  const parts = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (!parts.every(Number.isSafeInteger)) return null;
  return {
    major: parts[0],
    minor: parts[1],
    patch: parts[2],
    prerelease: m[4] === undefined
      ? []
      : m[4].split(".").map((id) => (NUMERIC.test(id) ? Number(id) : id)),
    build: m[5] === undefined ? [] : m[5].split("."),
  };
}

/**
 * Compares two semantic versions by semver precedence: negative when `a` is older, positive when
 * newer, 0 when of equal precedence (build metadata is ignored, as the spec says).
 */
export function compareSemver(a: SemVer, b: SemVer): number {
  if (a.major !== b.major) return a.major - b.major;
  if (a.minor !== b.minor) return a.minor - b.minor;
  if (a.patch !== b.patch) return a.patch - b.patch;
  // A release ranks above any of its pre-releases.
  if (a.prerelease.length === 0 || b.prerelease.length === 0) {
    return b.prerelease.length - a.prerelease.length;
  }
  const n = Math.min(a.prerelease.length, b.prerelease.length);
  for (let i = 0; i < n; i++) {
    const x = a.prerelease[i];
    const y = b.prerelease[i];
    if (x === y) continue;
    if (typeof x === "number" && typeof y === "number") return x - y;
    // Numeric identifiers rank below alphanumeric ones.
    if (typeof x === "number") return -1;
    if (typeof y === "number") return 1;
    return x < y ? -1 : 1;
  }
  return a.prerelease.length - b.prerelease.length;
}

/**
 * The catalog's total order over version strings, used to resolve "latest":
 * - a version that is a semantic version, optionally with one leading `v` (`v1.2.0`, as ESP-IDF's
 *   `git describe` versions are), is compared by semver precedence;
 * - any semver version is newer than any version that is not one, so a stray `nightly` never
 *   shadows a release;
 * - versions that are not semver are compared as plain strings (code units), and so are two
 *   versions of equal precedence (`1.0.0+a` / `1.0.0+b`), which keeps the order total and stable.
 *
 * Returns a negative number when `a` is older than `b`, positive when newer, 0 when equal.
 */
export function compareVersions(a: string, b: string): number {
  const sa = parseSemver(stripV(a));
  const sb = parseSemver(stripV(b));
  if (sa && sb) {
    const c = compareSemver(sa, sb);
    if (c !== 0) return Math.sign(c);
  } else if (sa) {
    return 1;
  } else if (sb) {
    return -1;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

function stripV(version: string): string {
  return /^[vV]\d/.test(version) ? version.slice(1) : version;
}
