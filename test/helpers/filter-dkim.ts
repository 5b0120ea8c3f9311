// Independent DKIM verification for tests, without DNS: the public key comes from the test, not
// from a TXT record. Implements RFC 6376 relaxed/relaxed canonicalisation and the rsa-sha256 and
// ed25519-sha256 (RFC 8463) algorithms, enough to prove Rspamd's signature is real.
import { createHash, verify, type KeyObject } from "node:crypto";

export interface DkimCheck {
  readonly tags: Record<string, string>;
  readonly bodyHashOk: boolean;
  readonly signatureOk: boolean;
}

function tagList(value: string): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const part of value.replace(/\r\n/g, "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0) tags[part.slice(0, eq).trim()] = part.slice(eq + 1).replace(/\s+/g, "");
  }
  return tags;
}

const relaxedValue = (v: string): string =>
  v
    .replace(/\r\n/g, "")
    .replace(/[ \t]+/g, " ")
    .trim();

function relaxedBody(body: string): string {
  const lines = body.split("\r\n").map((l) => l.replace(/[ \t]+/g, " ").replace(/ $/, ""));
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines.length === 0 ? "" : `${lines.join("\r\n")}\r\n`;
}

function headerFields(block: string): { name: string; value: string }[] {
  const fields: { name: string; value: string }[] = [];
  for (const line of block.split("\r\n")) {
    const last = fields[fields.length - 1];
    if (/^[ \t]/.test(line) && last !== undefined) last.value += `\r\n${line}`;
    else if (line.includes(":"))
      fields.push({ name: line.slice(0, line.indexOf(":")), value: line.slice(line.indexOf(":") + 1) });
  }
  return fields;
}

export function verifyDkimSignature(message: string, signatureValue: string, publicKey: KeyObject): DkimCheck {
  const tags = tagList(signatureValue);
  if (tags["c"] !== "relaxed/relaxed") throw new Error(`unsupported canonicalisation ${tags["c"]}`);
  const split = message.indexOf("\r\n\r\n");
  const body = relaxedBody(message.slice(split + 4));
  const bodyHashOk = createHash("sha256").update(body).digest("base64") === tags["bh"];

  // h= names are taken bottom-up; a name listed more often than it occurs adds nothing (oversigning).
  const fields = headerFields(message.slice(0, split));
  const used = new Set<number>();
  let data = "";
  for (const name of (tags["h"] ?? "").split(":")) {
    for (let i = fields.length - 1; i >= 0; i--) {
      const f = fields[i];
      if (f !== undefined && !used.has(i) && f.name.toLowerCase() === name.toLowerCase()) {
        used.add(i);
        data += `${name.toLowerCase()}:${relaxedValue(f.value)}\r\n`;
        break;
      }
    }
  }
  const withoutB = signatureValue.replace(/(^|;)(\s*b\s*=)[^;]*/, "$1$2");
  data += `dkim-signature:${relaxedValue(withoutB)}`;
  const sig = Buffer.from(tags["b"] ?? "", "base64");
  const signatureOk =
    tags["a"] === "ed25519-sha256"
      ? verify(null, createHash("sha256").update(data).digest(), publicKey, sig)
      : verify("sha256", Buffer.from(data), publicKey, sig);
  return { tags, bodyHashOk, signatureOk };
}
