// The TLS certificate chain and key the mail daemons present, checked before they are written:
// the chain parses and the key belongs to the leaf. Key 0600, never logged.
//
// Postfix reads them from one file, key then chain (smtpd_tls_chain_files): each smtpd process
// loads its certificate when it starts, at any moment, and with two files one started between
// the two renames of a renewal meets a new key with an old certificate ("key values mismatch:
// disabling TLS support", tried) and serves without TLS for its whole life, up to 100 sessions;
// submission then refuses every client. One file is swapped by one rename. Dovecot reads the
// separate files only when it (re)loads its config, after both are in place.
import { X509Certificate, createPrivateKey } from "node:crypto";
import type { TlsMaterial } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { NetservaError, invalid } from "../../common/errors.ts";
import type { FileSet } from "../apply/file-spec.ts";
import type { VnodePaths } from "../paths.ts";

export function renderTlsFiles(paths: VnodePaths, tls: TlsMaterial | undefined): FileSet {
  if (!tls || tls.certificateChainPem === "" || tls.privateKeyPem === "") {
    throw new NetservaError(
      "failed_precondition",
      "tls: the vnode needs a certificate and key (submission and IMAP require TLS)",
      { field: "tls" },
    );
  }
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(tls.certificateChainPem);
  } catch {
    throw invalid("tls.certificate_chain_pem", "is not a PEM certificate chain");
  }
  try {
    if (!leaf.checkPrivateKey(createPrivateKey(tls.privateKeyPem))) throw new Error("mismatch");
  } catch {
    throw invalid("tls.private_key_pem", "is not the private key of the leaf certificate");
  }
  const pem = (text: string): string => `${text.trimEnd()}\n`;
  return new Map([
    [paths.tlsCert, { content: tls.certificateChainPem, mode: 0o644 }],
    [paths.tlsKey, { content: tls.privateKeyPem, mode: 0o600 }],
    [paths.tlsKeyAndChain, { content: pem(tls.privateKeyPem) + pem(tls.certificateChainPem), mode: 0o600 }],
  ]);
}
