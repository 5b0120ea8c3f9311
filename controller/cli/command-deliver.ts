// Where a command's pushes go. Run inside serve on the embedded database, over the daemon's own
// deliver service: the fleet keeps a live mTLS link to every vnode, so a push is one RPC on it,
// not a connection (TLS handshake, ping) of its own. Anywhere else (a CLI process of its own, or
// PostgreSQL, where the vnode's lease holder pushes) a service of the command's own.
import { deliverServiceFor } from "../fleet/deliver.ts";
import type { DeliverService } from "../fleet/deliver.ts";
import type { Database } from "../db/open-database.ts";
import type { HomePaths } from "../home/home-paths.ts";
import type { CliContext } from "./cli-context.ts";

export function commandDeliver(ctx: CliContext, db: Database, paths: HomePaths): DeliverService {
  const daemon = db.kind === "postgresql" ? undefined : ctx.daemon?.deliver?.();
  // The daemon's service outlives the command: nothing here may close it.
  return daemon ? { deliver: (request) => daemon.deliver(request) } : deliverServiceFor(db, paths);
}
