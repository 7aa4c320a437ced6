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

/** The shipped certificate script (docs/broker.md). */
export const ISSUE_CERT_SCRIPT = new URL("../config/mosquitto/issue-cert.sh", import.meta.url)
  .pathname;

/** Exit code and output of one run of the shipped script. */
export interface ScriptRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs config/mosquitto/issue-cert.sh with `args`; never throws for a non-zero exit. */
export async function runIssueCert(args: string[]): Promise<ScriptRun> {
  const out = await new Deno.Command("sh", {
    args: [ISSUE_CERT_SCRIPT, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

/** A client's PEM files as the script lays them out. */
export interface ClientFiles {
  cert: string;
  key: string;
  ca: string;
}

/** A PKI made by the shipped script: CA, broker certificate for 127.0.0.1, client certificates. */
export interface ShippedPki {
  dir: string;
  ca: string;
  brokerCert: string;
  brokerKey: string;
  /** Issues a device certificate (CN = `id`) with the script; throws with its error when refused. */
  device(id: string): Promise<ClientFiles>;
  /** Issues a sender account's certificate with the script. */
  sender(account: string): Promise<ClientFiles>;
  /**
   * Signs a client certificate with CN `cn` straight from the CA, past the script's checks: what
   * a careless or compromised CA operator could issue, to test what the broker does with it.
   */
  rogue(cn: string): Promise<ClientFiles>;
  remove(): Promise<void>;
}

/** Makes a CA and a broker certificate for 127.0.0.1 with the shipped script. */
export async function makeShippedPki(): Promise<ShippedPki> {
  const dir = await Deno.makeTempDir({ prefix: "ota-pki-" });
  const must = async (args: string[]) => {
    const run = await runIssueCert(args);
    if (run.code !== 0) throw new Error(`issue-cert.sh ${args.join(" ")} failed: ${run.stderr}`);
  };
  await must(["ca", dir]);
  await must(["broker", dir, "127.0.0.1", "localhost"]);
  const client = async (kind: "device" | "sender", name: string): Promise<ClientFiles> => {
    await must([kind, dir, name]);
    const base = `${dir}/${kind}s/${name}`;
    return { cert: `${base}/client.crt`, key: `${base}/client.key`, ca: `${base}/ca.pem` };
  };
  let rogues = 0;
  return {
    dir,
    ca: `${dir}/ca.pem`,
    brokerCert: `${dir}/broker/ota-broker.pem`,
    brokerKey: `${dir}/broker/ota-broker.key`,
    device: (id) => client("device", id),
    sender: (account) => client("sender", account),
    async rogue(cn) {
      const out = `${dir}/rogue/${++rogues}`;
      await Deno.mkdir(out, { recursive: true });
      await Deno.writeTextFile(`${out}/ext`, "extendedKeyUsage=clientAuth\n");
      // -subj treats "/" and "+" as separators: escape them so they stay inside the CN.
      const subj = `/CN=${cn.replace(/[\\/+]/g, (c) => `\\${c}`)}`;
      const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
      await openssl(
        ["req", "-new", ...ec, "-keyout", "client.key", "-out", "c.csr", "-subj", subj],
        out,
      );
      await openssl([
        "x509",
        "-req",
        "-in",
        "c.csr",
        "-CA",
        `${dir}/ca.pem`,
        "-CAkey",
        `${dir}/ca.key`,
        "-CAserial",
        `${dir}/ca.srl`,
        "-days",
        "2",
        "-extfile",
        "ext",
        "-out",
        "client.crt",
      ], out);
      return { cert: `${out}/client.crt`, key: `${out}/client.key`, ca: `${dir}/ca.pem` };
    },
    remove: () => Deno.remove(dir, { recursive: true }),
  };
}

/** Writes a Mosquitto password file with `mosquitto_passwd` holding `users` (name → password). */
export async function makePasswordFile(
  path: string,
  users: Record<string, string>,
): Promise<void> {
  await Deno.writeTextFile(path, "");
  for (const [user, password] of Object.entries(users)) {
    const out = await new Deno.Command("mosquitto_passwd", {
      args: ["-b", path, user, password],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(
        `mosquitto_passwd -b ${path} "${user}" failed: ${new TextDecoder().decode(out.stderr)}`,
      );
    }
  }
}
