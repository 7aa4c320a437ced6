/**
 * Minimal assertions for the tests (the @std/assert registry is not reachable from our build
 * machines); built on node:assert's deep equality.
 * @module
 */
import assert from "node:assert/strict";

/** Fails unless `actual` deep-equals `expected`. */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  if (message === undefined) assert.deepStrictEqual(actual, expected);
  else assert.deepStrictEqual(actual, expected, message);
}

/** Fails unless `value` is truthy. */
export function assert_(value: unknown, message?: string): asserts value {
  if (message === undefined) assert.ok(value);
  else assert.ok(value, message);
}
export { assert_ as assert };

/** Fails unless `fn` throws an instance of `ErrorClass`; returns the error. */
export function assertThrows<E extends Error>(
  fn: () => unknown,
  // deno-lint-ignore no-explicit-any
  ErrorClass: new (...args: any[]) => E,
  includes?: string,
): E {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof ErrorClass)) throw new Error(`expected ${ErrorClass.name}, got ${err}`);
    if (includes && !err.message.includes(includes)) {
      throw new Error(`expected message to include "${includes}", got "${err.message}"`);
    }
    return err;
  }
  throw new Error(`expected ${ErrorClass.name} to be thrown`);
}

/** Fails unless the promise rejects with an instance of `ErrorClass`; returns the error. */
export async function assertRejects<E extends Error>(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  ErrorClass: new (...args: any[]) => E,
  includes?: string,
): Promise<E> {
  try {
    await fn();
  } catch (err) {
    if (!(err instanceof ErrorClass)) throw new Error(`expected ${ErrorClass.name}, got ${err}`);
    if (includes && !err.message.includes(includes)) {
      throw new Error(`expected message to include "${includes}", got "${err.message}"`);
    }
    return err;
  }
  throw new Error(`expected ${ErrorClass.name} to be rejected`);
}
