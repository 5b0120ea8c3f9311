// The TLS certificate chain and key the mail daemons present, checked before they are written:
// the chain parses and the key belongs to the leaf. Key 0600, never logged.
import { X509Certificate, createPrivateKey } from "node:crypto";
import type { TlsMaterial } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { NetservaError, invalid } from "../../common/errors.ts";
import type { FileSet } from "../apply/file-spec.ts";
import type { VnodePaths } from "../paths.ts";

export function renderTlsFiles(paths: VnodePaths, tls: TlsMaterial | undefined): FileSet {
  if (!tls || tls.certificateChainPem === "" || tls.privateKeyPem === "") {
    throw new NetservaError("failed_precondition", "tls: the vnode needs a certificate and key (submission and IMAP require TLS)", { field: "tls" });
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
  return new Map([
    [paths.tlsCert, { content: tls.certificateChainPem, mode: 0o644 }],
    [paths.tlsKey, { content: tls.privateKeyPem, mode: 0o600 }],
  ]);
}
