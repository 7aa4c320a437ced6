/** Manifest signatures (protocol §4.2): what the sender signs, a device with the public key verifies. */
import { assert, assertEquals } from "./_assert.ts";
import { runOta } from "../src/cli/ota.ts";
import { generateSigningKeys, signerFromPem, verifySignature } from "../src/protocol/signing.ts";
import { fromHex } from "../src/protocol/mod.ts";

Deno.test("a signature over the image SHA-256 verifies with the public key and fails for another image", async () => {
  const keys = await generateSigningKeys();
  const sign = await signerFromPem(keys.privateKey);
  const sha = new Uint8Array(32).fill(7);
  const sig = await sign(sha);
  assertEquals(sig.length, 64);
  assert(await verifySignature(keys.publicKey, sha, sig));
  const other = sha.slice();
  other[0] ^= 1;
  assert(!(await verifySignature(keys.publicKey, other, sig)));
  const tampered = sig.slice();
  tampered[10] ^= 1;
  assert(!(await verifySignature(keys.publicKey, sha, tampered)));
});

Deno.test("ota key generate writes a usable key pair and never overwrites it", async () => {
  const dir = await Deno.makeTempDir();
  const lines: string[] = [];
  const w = {
    write: (b: Uint8Array) => (lines.push(new TextDecoder().decode(b)), Promise.resolve(b.length)),
  };
  const io = { stdout: w, stderr: w, cwd: dir };
  assertEquals(await runOta(["key", "generate", "--out", "keys"], io), 0);
  const sign = await signerFromPem(await Deno.readTextFile(`${dir}/keys/signing_key.pem`));
  const sha = new Uint8Array(32).fill(1);
  assert(
    await verifySignature(
      await Deno.readTextFile(`${dir}/keys/signing_pub.pem`),
      sha,
      await sign(sha),
    ),
  );
  assertEquals(await runOta(["key", "generate", "--out", "keys"], io), 1);
  assert(lines.join("").includes("never overwritten"));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("the golden signature vectors verify exactly as tests/vectors/signature.json says", async () => {
  const doc = JSON.parse(
    await Deno.readTextFile(new URL("./vectors/signature.json", import.meta.url)),
  );
  for (const v of doc.vectors) {
    const ok = await verifySignature(doc.publicKeyPem, fromHex(v.sha256), fromHex(v.signature));
    assertEquals(ok, v.valid, v.name);
  }
});
