// A process that runs one apply (three config files, a manifest, lookup rows committed with the
// journal's mark) with kill points armed, for test/unit/apply-crash.test.ts: it dies where
// argv asks and the test recovers what it left behind.
//   node apply-crash-child.ts <dir> <content> <domain> <killAt> [failAt]
//   node apply-crash-child.ts <dir> --recover - <killAt>     (dies inside start-up recovery)
import { create } from "@bufbuild/protobuf";
import { DesiredStateSchema } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { applyConfigFiles } from "../../agent/apply/apply-config-files.ts";
import { recoverPendingApply } from "../../agent/apply/backup.ts";
import { armKillPoints } from "../../agent/apply/kill-points.ts";
import { openLookupStore } from "../../agent/lookup/lookup-store.ts";
import { checkState } from "../../agent/lookup/rows.ts";
import { runProgram } from "../../agent/process.ts";
import { crashFixture } from "./apply-crash-fixture.ts";

const [dir = "", content = "", domain = "", killAt, failAt] = process.argv.slice(2);
armKillPoints({ killAt, failAt });
const fx = crashFixture(dir);
const store = openLookupStore({ path: fx.lookupDb });
const rows = () => checkState(create(DesiredStateSchema, { domains: [{ domain, active: true }] }));
try {
  if (content === "--recover") recoverPendingApply(fx.backupDir, (id) => store.commitMark() === id);
  else
    await applyConfigFiles({
      files: fx.files(content),
      stagingDir: fx.stagingDir,
      backupDir: fx.backupDir,
      // A real child per checker and per reload, as the agent's checkers and sc() run them.
      validate: [{ name: "true", check: async () => void (await runProgram("true", [])) }],
      reload: async () => void (await runProgram("true", [])),
      verify: async () => undefined,
      commit: (mark) => void store.replaceAll(rows(), mark === undefined ? {} : { mark }),
      bookkeeping: new Map([[fx.manifest, { content: `manifest ${content}\n`, mode: 0o600 }]]),
    });
} catch (error) {
  process.stdout.write(`apply failed: ${String(error)}\n`);
}
store.close();
