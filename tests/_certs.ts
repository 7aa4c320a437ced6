/**
 * Test certificates made with openssl at test time: a CA, a broker certificate for 127.0.0.1
 * and a client certificate, for TLS and mutual-TLS tests against Mosquitto.
 * @module
 */

/** Paths of the generated PEM files. */
export interface TestCerts {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Generates a CA and certificates signed by it in a new temporary folder. */
export async function makeTestCerts(clientCn = "ota-sender"): Promise<TestCerts> {
  const dir = await Deno.makeTempDir({ prefix: "ota-certs-" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl([
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=ota-test-ca",
  ], dir);
  await Deno.writeTextFile(`${dir}/san.ext`, "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  for (
    const [name, cn, ext] of [["server", "127.0.0.1", true], ["client", clientCn, false]] as const
  ) {
    await openssl([
      "req",
      "-new",
      ...ec,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      `/CN=${cn}`,
    ], dir);
    await openssl([
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${name}.pem`,
      "-days",
      "2",
      ...(ext ? ["-extfile", "san.ext"] : []),
    ], dir);
  }
  // Mosquitto started as root drops to its own user, which must read these test-only files.
  await Deno.chmod(dir, 0o755);
  for await (const e of Deno.readDir(dir)) await Deno.chmod(`${dir}/${e.name}`, 0o644);
  return {
    dir,
    ca: `${dir}/ca.pem`,
    serverCert: `${dir}/server.pem`,
    serverKey: `${dir}/server.key`,
    clientCert: `${dir}/client.pem`,
    clientKey: `${dir}/client.key`,
  };
}
