// The DKIM TXT record of a key: `<selector>._domainkey.<domain>` "v=DKIM1; k=…; p=…" (split
// into 255-byte strings when written: an RSA-2048 key is ~410 bytes). DNS owns the record's
// shape; controller/dkim makes and keeps the keys and uses this to publish them.

/** The `k=` key types a DKIM record names (RFC 6376, RFC 8463). */
export type DkimKeyType = "rsa" | "ed25519";

export function dkimRecordName(selector: string, domain: string): string {
  return `${selector}._domainkey.${domain}.`;
}

export function dkimRecordValue(keyType: DkimKeyType, publicKey: string): string {
  return `v=DKIM1; k=${keyType}; p=${publicKey}`;
}
