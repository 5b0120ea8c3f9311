// The controller's digest of a compiled state (common/state/lookup-digest.ts) equals the digest an
// agent's lookup store reports after applying that state: otherwise the reconciler would resend
// every state forever, or miss a lost push.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { DesiredStateSchema } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { EMPTY_DIGEST, lookupDigestOf } from "../../common/state/lookup-digest.ts";
import { openLookupStore } from "../../agent/lookup/lookup-store.ts";
import { checkState } from "../../agent/lookup/rows.ts";

const HASH = "{SHA512-CRYPT}$6$abcdefgh$" + "x".repeat(86);

describe("lookup digest", () => {
  it("the controller computes what the agent's store reports, and a changed row changes it", () => {
    const dir = mkdtempSync(join(tmpdir(), "digest-"));
    const store = openLookupStore({ path: join(dir, "sysadm.db") });
    try {
      const state = create(DesiredStateSchema, {
        generation: 3n,
        domains: [
          { domain: "example.test", active: true },
          { domain: "xn--bcher-kva.test", active: false },
        ],
        mailboxes: [
          {
            address: "ann@example.test",
            passwordHash: HASH,
            quotaBytes: 2n ** 31n,
            active: true,
            sieveScript: 'require "fileinto";\nfileinto "Junk";\n',
            displayName: "Ann Ö",
          },
          { address: "bob@xn--bcher-kva.test", passwordHash: HASH, active: false },
        ],
        aliases: [
          { source: "info@example.test", targets: ["ann@example.test", "bob@xn--bcher-kva.test"], active: true },
          { source: "@example.test", targets: ["ann@example.test"], active: false },
        ],
      });
      expect(store.digest()).toBe(EMPTY_DIGEST);
      store.replaceAll(checkState(state));
      expect(lookupDigestOf(state)).toBe(store.digest());
      expect(store.recomputeDigest()).toBe(store.digest());
      const changed = create(DesiredStateSchema, { ...state, aliases: state.aliases.slice(0, 1) });
      expect(lookupDigestOf(changed)).not.toBe(store.digest());
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
