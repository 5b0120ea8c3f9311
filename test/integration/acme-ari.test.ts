// ACME renewal information (ARI, RFC 9773) and rate limits against a real Pebble answering DNS-01
// through a real PowerDNS. Pebble implements neither, so its front is the injecting test proxy
// (test/helpers/pebble.ts, `injecting: true`): it adds `renewalInfo` to Pebble's directory and
// answers `/renewal-info/<cert ID>` with the window a test chooses, and answers new orders with a
// 429 `rateLimited` problem and a Retry-After when a test says so; everything else is Pebble's.
// Proven: the renewal is scheduled inside the suggested window (and shown); a window moved into
// the past renews at the next sweep, with a new order that names the certificate it replaces; a
// rateLimited answer is honoured (no order before its Retry-After, state and error shown), and
// the order goes through once the server lets it.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CliRun, Harness } from "../helpers/controller-harness.ts";
import { pdnsAvailable } from "../helpers/pdns.ts";
import { pebbleAvailable } from "../helpers/pebble.ts";
import type { Pebble } from "../helpers/pebble.ts";
import { startAcmeLab, type AcmeLab } from "../helpers/acme-lab.ts";

let lab: AcmeLab;
let h: Harness;
let pebble: Pebble;
const ZONE = "acme-ari.test";
/** Pebble's new-order path (its directory's newOrder). */
const NEW_ORDER = "/order-plz";

const show = (vnode: string): Promise<ShowRow> => lab.show<ShowRow>(vnode);
const sql = <T>(text: string, params?: unknown[]): Promise<T[]> => lab.sql<T>(text, params);
const storedChain = (vnode: string): Promise<string> => lab.storedChain(vnode);
const addVnode = (name: string): Promise<void> => lab.addVnode(name);
const acme = (vnode: string): Promise<CliRun> => lab.acme(vnode);

interface ShowRow {
  source: string;
  acme: string | null;
  nextRenewal: string | null;
  failures: number;
  lastError: string | null;
  renewalWindow: { start: string; end: string } | null;
  retryAfter: string | null;
}

/** The ARI certificate ID as openssl sees the leaf: keyid of the AKI, and the serial's DER octets. */
function opensslCertificateId(chainPem: string): string {
  const dir = mkdtempSync(join(tmpdir(), "nsm-ari-"));
  try {
    const file = join(dir, "leaf.pem");
    writeFileSync(file, chainPem.split(/(?=-----BEGIN CERTIFICATE-----)/)[0] ?? "");
    const text = execFileSync(
      "/usr/bin/openssl",
      ["x509", "-in", file, "-noout", "-serial", "-ext", "authorityKeyIdentifier"],
      {
        encoding: "utf8",
      },
    );
    const serialHex = /serial=([0-9A-F]+)/i.exec(text)?.[1] ?? "";
    const keyIdHex = (
      /(?:keyid:)?\s*((?:[0-9A-F]{2}:)+[0-9A-F]{2})/i.exec(text.split("Authority Key Identifier")[1] ?? "")?.[1] ?? ""
    ).replace(/:/g, "");
    let serial = Buffer.from(serialHex.length % 2 ? `0${serialHex}` : serialHex, "hex");
    if ((serial[0] ?? 0) & 0x80) serial = Buffer.concat([Buffer.from([0]), serial]);
    return `${Buffer.from(keyIdHex, "hex").toString("base64url")}.${serial.toString("base64url")}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The JWS payload of a request the proxy saw (what acme-client signed). */
function payloadOf(body: string): Record<string, unknown> {
  const jws = JSON.parse(body) as { payload: string };
  return JSON.parse(Buffer.from(jws.payload, "base64url").toString("utf8")) as Record<string, unknown>;
}

describe.skipIf(!pdnsAvailable || !pebbleAvailable)(
  "ACME renewal information and rate limits (injecting proxy)",
  () => {
    beforeAll(async () => {
      lab = await startAcmeLab(ZONE, { injecting: true });
      ({ h, pebble } = lab);
    }, 120_000);

    afterAll(async () => {
      await lab?.close();
    });

    it("schedules renewal inside the ARI window; a window moved into the past renews at once, naming the replaced certificate", async () => {
      const asked: string[] = [];
      const window = { start: new Date(Date.now() + 10 * 60_000), end: new Date(Date.now() + 20 * 60_000) };
      const past = { start: new Date(Date.now() - 2 * 3600_000), end: new Date(Date.now() - 3600_000) };
      // Per certificate, as a CA answers: the one named `moved` has its window moved into the past.
      let moved = "";
      pebble.setRenewalInfo((certId) => {
        asked.push(certId);
        const w = certId === moved ? past : window;
        return {
          status: 200,
          headers: { "retry-after": "21600" },
          body: { suggestedWindow: { start: w.start.toISOString(), end: w.end.toISOString() } },
        };
      });
      try {
        await addVnode("ari1");
        const r = await acme("ari1");
        expect(r.code, r.err).toBe(0);
        const first = await storedChain("ari1");
        const firstId = opensslCertificateId(first);
        expect(asked).toEqual([firstId]);

        const row = await show("ari1");
        expect(row.acme).toBe("valid");
        expect(row.renewalWindow).toEqual({ start: window.start.toISOString(), end: window.end.toISOString() });
        // Inside the window, not at 2/3 of Pebble's hour (40 minutes).
        const next = Date.parse(row.nextRenewal ?? "");
        expect(next).toBeGreaterThanOrEqual(window.start.getTime());
        expect(next).toBeLessThanOrEqual(window.end.getTime());
        // Retry-After 6 h: a sweep now neither asks again nor renews.
        await h.controller.checkCertificates();
        expect(asked).toHaveLength(1);
        expect(await storedChain("ari1")).toBe(first);

        // The CA moves the window into the past (as before a revocation); once the Retry-After has
        // run out, the sweep asks again and renews in the same pass.
        moved = firstId;
        await sql(
          "update acme_certificates set renewal_info_check_at = now() where vnode_id = (select id from vnodes where name = 'ari1')",
        );
        const ordersBefore = pebble.seen.filter((s) => s.method === "POST" && s.path === NEW_ORDER).length;
        await h.controller.checkCertificates();
        const second = await storedChain("ari1");
        expect(second).not.toBe(first);
        const orders = pebble.seen.filter((s) => s.method === "POST" && s.path === NEW_ORDER);
        expect(orders).toHaveLength(ordersBefore + 1);
        expect(payloadOf(orders.at(-1)?.body ?? "{}").replaces).toBe(firstId);
        expect(asked).toEqual([firstId, firstId, opensslCertificateId(second)]);
        // The new certificate has a window of its own, ahead: not due, a further sweep orders nothing.
        const after = await show("ari1");
        expect(after.acme).toBe("valid");
        expect(Date.parse(after.nextRenewal ?? "")).toBeGreaterThanOrEqual(window.start.getTime());
        await h.controller.checkCertificates();
        expect(pebble.seen.filter((s) => s.method === "POST" && s.path === NEW_ORDER)).toHaveLength(ordersBefore + 1);
      } finally {
        pebble.setRenewalInfo(undefined);
      }
    }, 180_000);

    it("honours a rateLimited answer: no order before its Retry-After, state and error shown, then orders again", async () => {
      await addVnode("ari2");
      const r = await acme("ari2");
      expect(r.code, r.err).toBe(0);
      const served = await storedChain("ari2");
      // Two hours: longer than the 600 s backoff, so the server's word decides.
      pebble.inject(({ method, path }) =>
        method === "POST" && path === NEW_ORDER
          ? {
              status: 429,
              headers: { "content-type": "application/problem+json", "retry-after": "7200" },
              body: { type: "urn:ietf:params:acme:error:rateLimited", detail: "too many certificates for this name" },
            }
          : undefined,
      );
      try {
        const newOrders = (): number => pebble.seen.filter((s) => s.method === "POST" && s.path === NEW_ORDER).length;
        await sql(
          "update acme_certificates set next_attempt_at = now() where vnode_id = (select id from vnodes where name = 'ari2')",
        );
        const before = newOrders();
        await h.controller.checkCertificates();
        expect(newOrders()).toBe(before + 1);
        const row = await show("ari2");
        expect(row.acme).toBe("rate-limited");
        expect(row.failures).toBe(1);
        expect(row.lastError).toContain("rate limited");
        expect(row.lastError).toContain("too many certificates for this name");
        const retryAfter = Date.parse(row.retryAfter ?? "");
        expect(retryAfter - Date.now()).toBeGreaterThan(7000_000);
        expect(Date.parse(row.nextRenewal ?? "")).toBe(retryAfter);
        expect(await storedChain("ari2")).toBe(served);
        // Not due before then: a sweep sends no order.
        await h.controller.checkCertificates();
        expect(newOrders()).toBe(before + 1);
        const status = JSON.parse((await h.cli(["mail:status", "ari2", "--json"])).out) as {
          acme: { state: string; failures: number } | null;
        };
        expect(status.acme).toMatchObject({ state: "rate-limited", failures: 1 });
      } finally {
        pebble.inject(undefined);
      }
      // The Retry-After has passed (moved here, not waited for): the order goes through.
      await sql(
        "update acme_certificates set next_attempt_at = now() where vnode_id = (select id from vnodes where name = 'ari2')",
      );
      await h.controller.checkCertificates();
      const row = await show("ari2");
      expect(row).toMatchObject({ acme: "valid", failures: 0, retryAfter: null, lastError: null });
      expect(await storedChain("ari2")).not.toBe(served);
    }, 180_000);
  },
);
