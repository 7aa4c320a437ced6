/**
 * Loopback port helpers shared by the broker launchers, tests and benchmarks.
 * @module
 */

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** True when something accepts TCP connections on `host:port`. */
export async function isListening(host: string, port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: host, port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/** Waits until `host:port` accepts connections; throws after `timeoutMs`. */
export async function waitForPort(host: string, port: number, timeoutMs = 10000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await isListening(host, port)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`Nothing listens on ${host}:${port} after ${timeoutMs} ms`);
}
