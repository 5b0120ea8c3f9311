// `ca status`: which CAs exist and in which state, which certificates in use still come from the
// old CA, and per vnode whether its agent runs a new-CA certificate and trusts the new CA. The
// same answer decides whether `ca retire-old` may go ahead.
import { readFileSync } from "node:fs";
import type { SqlEntityManager } from "@mikro-orm/sql";
import { inspectCertificate } from "../../common/pki/inspect.ts";
import { caPin } from "../../common/pki/pin.ts";
import { issuerIn, readTrustBundle } from "../../common/pki/trust-bundle.ts";
import type { TrustedCa } from "../../common/pki/trust-bundle.ts";
import { Certificate, CertificateAuthority, Vnode } from "../db/entities/index.ts";
import type { HomePaths } from "../home/home-paths.ts";
import { readCaFiles } from "./ca-files.ts";

export interface CaRow {
  pin: string;
  serial: string;
  state: string;
  notBefore: string;
  notAfter: string;
  createdAt: string | null;
  retiredAt: string | null;
}

export interface VnodeCaRow {
  vnode: string;
  status: string;
  /** Serial of the vnode's newest live certificate. */
  certificate: string | null;
  /** "active" | "previous" | "retired" | "unknown" (another CA) | null (none live). */
  certificateCa: string | null;
  /** Whether the agent confirmed it trusts the active CA (null: not asked yet). */
  trustsActive: boolean | null;
  /** Why `ca retire-old` would strand this vnode; null when it would not. */
  waitingFor: string | null;
}

export interface OldCertificate {
  serial: string;
  role: string;
  identity: string;
  notAfter: string;
}

export interface CaStatus {
  /** "single": one CA; "overlap": a rotation is under way (old and new trusted). */
  phase: "single" | "overlap";
  activePin: string;
  cas: CaRow[];
  vnodes: VnodeCaRow[];
  /** Certificates in use (the newest of each identity) still issued by the previous CA. */
  oldCertificates: OldCertificate[];
}

/** Every CA we know of, trusted or retired, to say which one issued a certificate. */
function knownCas(trusted: TrustedCa[], rows: CertificateAuthority[]): TrustedCa[] {
  const known = [...trusted];
  for (const row of rows) {
    if (known.some((ca) => ca.pin === row.pin)) continue;
    try {
      known.push(...readTrustBundle(row.certPem, "certificate_authorities.cert_pem"));
    } catch {
      // A row we cannot read names no issuer.
    }
  }
  return known;
}

export async function caStatus(em: SqlEntityManager, paths: HomePaths, now = new Date()): Promise<CaStatus> {
  const files = readCaFiles(paths);
  const activePin = caPin(files.caCertPem);
  const trusted = readTrustBundle(files.trustPem, "trust.crt");
  const rows = await em.find(CertificateAuthority, {}, { orderBy: { createdAt: "desc" } });
  const cas: CaRow[] = rows.map((r) => ({
    pin: r.pin,
    serial: r.serial,
    state: r.state,
    notBefore: r.notBefore.toISOString(),
    notAfter: r.notAfter.toISOString(),
    createdAt: r.createdAt.toISOString(),
    retiredAt: r.retiredAt ? r.retiredAt.toISOString() : null,
  }));
  // A home never rotated has no rows: its one CA is the active one.
  if (!cas.some((c) => c.pin === activePin)) {
    const info = inspectCertificate(files.caCertPem);
    cas.unshift({
      pin: activePin,
      serial: info.serialHex,
      state: "active",
      notBefore: info.notBefore.toISOString(),
      notAfter: info.notAfter.toISOString(),
      createdAt: null,
      retiredAt: null,
    });
  }
  const overlap = trusted.length > 1;

  // The newest live certificate of each identity is the one in use.
  const live = await em.find(
    Certificate,
    { revokedAt: null, notAfter: { $gt: now } },
    { orderBy: { notBefore: "desc", id: "desc" } },
  );
  const newest = new Map<string, Certificate>();
  for (const c of live) {
    const key = c.role === "agent" && c.vnodeId != null ? `vnode:${c.vnodeId}` : `${c.role}:${c.identity}`;
    if (!newest.has(key)) newest.set(key, c);
  }
  const known = knownCas(trusted, rows);
  const stateByPin = new Map(rows.map((r) => [r.pin, r.state]));
  stateByPin.set(activePin, "active");
  for (const ca of trusted) if (!stateByPin.has(ca.pin)) stateByPin.set(ca.pin, "previous");
  const issuerState = new Map<string, string>();
  for (const [key, c] of newest) {
    const issuer = issuerIn(c.pem, known);
    issuerState.set(key, issuer ? (stateByPin.get(issuer.pin) ?? "unknown") : "unknown");
  }
  // The controller's own certificate is the one in the home, whatever the ledger says.
  const own = readFileSync(paths.cert, "utf8");
  const ownInfo = inspectCertificate(own);
  const oldCertificates: OldCertificate[] = [];
  for (const [key, c] of newest) {
    if (issuerState.get(key) !== "previous") continue;
    if (c.role === "controller" && c.identity === ownInfo.identity && c.serial !== ownInfo.serialHex) continue;
    oldCertificates.push({ serial: c.serial, role: c.role, identity: c.identity, notAfter: c.notAfter.toISOString() });
  }

  const vnodes = await em.find(Vnode, {}, { orderBy: { name: "asc" } });
  return {
    phase: overlap ? "overlap" : "single",
    activePin,
    cas,
    oldCertificates,
    vnodes: vnodes.map((v) => {
      const cert = newest.get(`vnode:${v.id}`);
      const certificateCa = cert ? (issuerState.get(`vnode:${v.id}`) ?? null) : null;
      const trustsActive = v.trustedCaPins ? v.trustedCaPins.includes(activePin) : null;
      const reasons: string[] = [];
      if (v.status === "enrolled" && overlap) {
        if (certificateCa !== "active") reasons.push("certificate from the old CA");
        if (trustsActive !== true) reasons.push("new CA not yet trusted");
      }
      return {
        vnode: v.name,
        status: v.status,
        certificate: cert?.serial ?? null,
        certificateCa,
        trustsActive,
        waitingFor: reasons.length > 0 ? reasons.join(", ") : null,
      };
    }),
  };
}
