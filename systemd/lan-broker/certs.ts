/**
 * The LAN broker's certificates, made on the Pi with the openssl command line (Node's crypto can
 * verify certificates but not issue them): a CA and a server certificate it signs, both EC P-256,
 * which keeps the CA small enough to travel in a connection bundle. The CA's key never leaves
 * root; clients trust only this CA, so no public CA is involved and nothing expires soon.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { hostname, networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { X509Certificate } from "node:crypto";
import { IqError } from "../../firmware/errors.js";

const CA_DAYS = 7300;
const SERVER_DAYS = 3650;
/** A server certificate this close to its end is made again at the next install. */
const RENEW_BEFORE_MS = 30 * 24 * 3600 * 1000;
const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

export interface KeyPair {
  key: string;
  cert: string;
}

/** The names a client may use for the broker: DNS names and IP addresses. */
export interface BrokerNames {
  dns: string[];
  ips: string[];
}

/**
 * This Pi's names: `<hostname>.local` (mDNS, what bundles use), the bare hostname, loopback (the
 * hub's own connection), and, on the running system, its current addresses (a tree being built has
 * none). The hostname comes from the target's /etc/hostname, as the installed Pi will boot with it.
 */
export function brokerNames(host: string, onThisSystem: boolean): BrokerNames {
  const addresses = onThisSystem
    ? Object.values(networkInterfaces())
        .flat()
        .filter((a) => a !== undefined && !a.internal && !a.address.startsWith("fe80:"))
        .map((a) => a!.address)
    : [];
  return { dns: [`${host}.local`, host, "localhost"], ips: ["127.0.0.1", "::1", ...addresses] };
}

/** The target's hostname: its /etc/hostname, else this machine's. */
export async function targetHostname(hostnameFile: string): Promise<string> {
  const text = await readFile(hostnameFile, "utf8").catch(() => "");
  return text.trim() || hostname();
}

/** Whether `cert` is signed by `ca`, names every one of `names`, and is not about to expire. */
export function serverCertFits(cert: string, ca: string, names: BrokerNames, now = Date.now()): boolean {
  try {
    const server = new X509Certificate(cert);
    return (
      server.verify(new X509Certificate(ca).publicKey) &&
      Date.parse(server.validTo) - now > RENEW_BEFORE_MS &&
      names.dns.every((name) => server.checkHost(name, { wildcards: false }) === name) &&
      names.ips.every((ip) => server.checkIP(ip) !== undefined)
    );
  } catch {
    return false;
  }
}

export function makeCa(): Promise<KeyPair> {
  return inTempDir(async (dir, openssl) => {
    await openssl(
      ["req", "-x509", "-new", ...EC, "-keyout", "key.pem", "-out", "cert.pem", "-days", String(CA_DAYS)],
      ["-subj", "/CN=iq-hub LAN broker CA"],
      ["-addext", "basicConstraints=critical,CA:TRUE,pathlen:0", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
    );
    return readPair(dir);
  });
}

export function makeServerCert(ca: KeyPair, names: BrokerNames): Promise<KeyPair> {
  const san = [...names.dns.map((name) => `DNS:${name}`), ...names.ips.map((ip) => `IP:${ip}`)].join(",");
  // The names go into openssl's -subj and -addext: a hostname with anything else would change their meaning.
  const bad = names.dns.find((name) => !/^[A-Za-z0-9.-]+$/.test(name));
  if (bad !== undefined) throw new IqError("install_bad_hostname", `"${bad}" cannot name the broker in its certificate: set a plain hostname (hostnamectl)`);
  return inTempDir(async (dir, openssl) => {
    await writeFile(join(dir, "ca.pem"), ca.cert);
    await writeFile(join(dir, "ca.key"), ca.key, { mode: 0o600 });
    await openssl(
      ["req", "-x509", "-new", ...EC, "-keyout", "key.pem", "-out", "cert.pem", "-days", String(SERVER_DAYS)],
      ["-subj", `/CN=${names.dns[0]}`, "-CA", "ca.pem", "-CAkey", "ca.key"],
      ["-addext", `subjectAltName=${san}`, "-addext", "basicConstraints=critical,CA:FALSE"],
      ["-addext", "keyUsage=critical,digitalSignature", "-addext", "extendedKeyUsage=serverAuth"],
    );
    return readPair(dir);
  });
}

type OpenSsl = (...argv: string[][]) => Promise<void>;

/** Runs openssl in a private temp dir, removed afterwards: the keys exist only in what is returned. */
async function inTempDir<T>(work: (dir: string, openssl: OpenSsl) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "iq-hub-certs-"));
  const openssl: OpenSsl = async (...argv) => {
    try {
      await promisify(execFile)("openssl", argv.flat(), { cwd: dir });
    } catch (error) {
      const { code, stderr } = error as NodeJS.ErrnoException & { stderr?: string };
      const why = code === "ENOENT" ? "openssl is missing: sudo apt-get install -y openssl" : (stderr?.trim() ?? String(error));
      throw new IqError("install_certificate_failed", `cannot make the LAN broker's certificates: ${why}`);
    }
  };
  try {
    return await work(dir, openssl);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function readPair(dir: string): Promise<KeyPair> {
  return { key: await readFile(join(dir, "key.pem"), "utf8"), cert: await readFile(join(dir, "cert.pem"), "utf8") };
}
