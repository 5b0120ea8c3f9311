// The certificate for a name: the named certificates of the desired state (the SNI seam), else the
// vnode's mail certificate. Each pair is checked (chain parses, key belongs to the leaf) before
// anything uses it; a bad one refuses the state, naming its field.
import { X509Certificate, createPrivateKey } from "node:crypto";
import { createSecureContext, type SecureContext } from "node:tls";
import type { DesiredState } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { invalid } from "../../common/errors.ts";
import { checkDomain } from "../lookup/names.ts";

export interface CertPair {
  /** Names served with it, lowercase A-labels; "*.example.com" covers one label. */
  readonly names: readonly string[];
  readonly chainPem: string;
  readonly keyPem: string;
}

export interface CertMap {
  readonly named: readonly CertPair[];
  /** The vnode's mail certificate: what any other name gets. */
  readonly fallback: CertPair | undefined;
}

function checkPair(chainPem: string, keyPem: string, field: string): void {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(chainPem);
  } catch {
    throw invalid(`${field}.certificate_chain_pem`, "is not a PEM certificate chain");
  }
  let matches = false;
  try {
    matches = leaf.checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    matches = false;
  }
  if (!matches) throw invalid(`${field}.private_key_pem`, "is not the private key of the leaf certificate");
}

function checkName(name: string, field: string): string {
  return name.startsWith("*.") ? `*.${checkDomain(name.slice(2), field)}` : checkDomain(name, field);
}

export function certMapOf(state: DesiredState): CertMap {
  const named = state.certificates.map((c, i): CertPair => {
    const field = `certificates[${i}]`;
    if (c.names.length === 0) throw invalid(`${field}.names`, "needs at least one name");
    checkPair(c.certificateChainPem, c.privateKeyPem, field);
    return {
      names: c.names.map((n, j) => checkName(n, `${field}.names[${j}]`)),
      chainPem: c.certificateChainPem,
      keyPem: c.privateKeyPem,
    };
  });
  const tls = state.tls;
  let fallback: CertPair | undefined;
  if (tls && tls.certificateChainPem !== "" && tls.privateKeyPem !== "") {
    checkPair(tls.certificateChainPem, tls.privateKeyPem, "tls");
    fallback = { names: [], chainPem: tls.certificateChainPem, keyPem: tls.privateKeyPem };
  }
  return { named, fallback };
}

/** Whether `pattern` ("name" or "*.parent") covers `name`. */
export function nameMatches(pattern: string, name: string): boolean {
  if (pattern === name) return true;
  if (!pattern.startsWith("*.")) return false;
  const rest = pattern.slice(1); // ".parent"
  return name.endsWith(rest) && !name.slice(0, -rest.length).includes(".") && name.length > rest.length;
}

/** The pair for `name`: an exact name wins over a wildcard, then the mail certificate. */
export function pairFor(map: CertMap, name: string): CertPair | undefined {
  const n = name.toLowerCase();
  return (
    map.named.find((c) => c.names.includes(n)) ??
    map.named.find((c) => c.names.some((p) => nameMatches(p, n))) ??
    map.fallback
  );
}

/** Secure contexts made once per pair, chosen per SNI name. */
export function createContextChooser(map: CertMap): (name: string | undefined) => SecureContext | undefined {
  const contexts = new Map<CertPair, SecureContext>();
  const contextOf = (pair: CertPair): SecureContext => {
    let ctx = contexts.get(pair);
    if (!ctx) {
      ctx = createSecureContext({ cert: pair.chainPem, key: pair.keyPem, minVersion: "TLSv1.2" });
      contexts.set(pair, ctx);
    }
    return ctx;
  };
  return (name) => {
    const pair = name === undefined || name === "" ? map.fallback : pairFor(map, name);
    return pair ? contextOf(pair) : undefined;
  };
}
