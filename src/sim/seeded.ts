/**
 * Seeded randomness of the simulator: the same `--seed` picks the same failing devices and the
 * same offer delays on every run, so a test of "30 % boot failures" knows what to expect and a
 * failing run can be replayed.
 * @module
 */

/** A pseudo-random generator of numbers in [0, 1) (mulberry32), seeded by `seed` and `salt`. */
export function seededRandom(seed: number, salt = ""): () => number {
  let state = (hash32(`${seed}:${salt}`) ^ seed) >>> 0;
  return () => {
    state = (state + 0x6D2B79F5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Exactly `round(count × pct / 100)` distinct indexes of `0..count-1`, chosen by `seed` (a
 * seeded shuffle): "30 % of 100 devices" is 30 devices, the same 30 for the same seed.
 */
export function pickShare(count: number, pct: number, seed: number, salt: string): Set<number> {
  const wanted = Math.round((count * Math.max(0, Math.min(100, pct))) / 100);
  const order = Array.from({ length: count }, (_, i) => i);
  const random = seededRandom(seed, salt);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return new Set(order.slice(0, wanted));
}

/** FNV-1a over the UTF-16 code units of `text`. */
function hash32(text: string): number {
  let h = 0x811C9DC5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
