// The daemon files a state would give this vnode, rendered only: nothing is written, checked,
// reloaded or created (no vmail user, no lookup DB), so it is allowed while the vnode is
// unmanaged. Adoption shows their diff against NetServa's files before it switches.
import { createHash } from "node:crypto";
import type { DesiredState } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import type { VnodePaths } from "../paths.ts";
import { readPostfixInstallParams } from "../postfix/meta-files.ts";
import type { ServiceControl } from "../sc/service-control.ts";
import { createMailConfig, type MailConfigOptions } from "./mail-config.ts";
import { lookupUser } from "./vmail-user.ts";

export interface PreviewFile {
  readonly path: string;
  readonly content: string;
  readonly sha256: string;
}

/** Before the first switch there may be no vmail user yet: useradd picks its uid then. The
 * placeholder is above any real uid, so first_valid_uid shows the adopted owners' lowest. */
const NOT_YET = { name: "vmail", uid: 2 ** 31 - 2, gid: 2 ** 31 - 2 };

export async function previewMailFiles(
  o: Omit<MailConfigOptions, "vmail" | "postfixInstallParams" | "paths" | "sc"> & {
    paths: VnodePaths;
    sc: ServiceControl;
    vmailUser?: string;
  },
  state: DesiredState,
): Promise<PreviewFile[]> {
  const vmail = lookupUser(o.vmailUser ?? "vmail") ?? NOT_YET;
  const config = createMailConfig({ ...o, vmail, postfixInstallParams: await readPostfixInstallParams() });
  const { daemons } = config.render(state, { daemonsOnly: true });
  return [...daemons].map(([path, spec]) => ({
    path,
    content: spec.content,
    sha256: createHash("sha256").update(spec.content).digest("hex"),
  }));
}
