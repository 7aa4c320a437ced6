/**
 * Manifest signing (docs/protocol.md §4.2): ECDSA P-256 with SHA-256 over the 32 bytes of the
 * image's SHA-256, as 64 bytes r‖s. Keys are PKCS#8 (private) and SPKI (public) PEM files.
 * @module
 */

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGN = { name: "ECDSA", hash: "SHA-256" } as const;

function pemBody(pem: string, label: string): Uint8Array<ArrayBuffer> {
  const m = pem.match(new RegExp(`-----BEGIN ${label}-----([\\s\\S]+?)-----END ${label}-----`));
  if (!m) throw new Error(`Cannot read key: no "${label}" PEM block found`);
  const bin = atob(m[1].replace(/\s+/g, ""));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = btoa(String.fromCharCode(...new Uint8Array(der)));
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g)!.join("\n")}\n-----END ${label}-----\n`;
}

/** Builds a sign function from a PKCS#8 PEM ECDSA P-256 private key. */
export async function signerFromPem(
  pkcs8Pem: string,
): Promise<(sha256: Uint8Array) => Promise<Uint8Array>> {
  const key = await crypto.subtle.importKey(
    "pkcs8",
    pemBody(pkcs8Pem, "PRIVATE KEY"),
    ALGORITHM,
    false,
    ["sign"],
  );
  return async (sha256) =>
    new Uint8Array(await crypto.subtle.sign(SIGN, key, new Uint8Array(sha256)));
}

/** Verifies a manifest signature with an SPKI PEM public key (the simulator uses this). */
export async function verifySignature(
  spkiPem: string,
  sha256: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  const key = await crypto.subtle.importKey(
    "spki",
    pemBody(spkiPem, "PUBLIC KEY"),
    ALGORITHM,
    false,
    ["verify"],
  );
  return signature.length === 64 &&
    await crypto.subtle.verify(SIGN, key, new Uint8Array(signature), new Uint8Array(sha256));
}

/** A new key pair as PEM strings: `privateKey` for the sender, `publicKey` for the devices. */
export async function generateSigningKeys(): Promise<{ privateKey: string; publicKey: string }> {
  const pair = await crypto.subtle.generateKey(ALGORITHM, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  return {
    privateKey: pem("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", pair.privateKey)),
    publicKey: pem("PUBLIC KEY", await crypto.subtle.exportKey("spki", pair.publicKey)),
  };
}
