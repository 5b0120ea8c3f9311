// `postqueue -f` after the daemons were stopped and started again under another configuration:
// mail deferred while Dovecot was down or switching (LMTP refused, 4xx) would otherwise wait for
// its backoff (minimal_backoff_time, 300 s by default, doubling), which is what an operator
// flushes by hand after such maintenance. Best effort: a flush that fails leaves the mail to the
// backoff as before and is reported, never thrown.
import type { Logger } from "../../common/log.ts";
import { runProgram } from "../process.ts";

export interface FlushOptions {
  readonly log?: Logger;
  /** Run inside the vnode's namespace (postqueue checks inet_interfaces like every Postfix program). */
  readonly wrap?: readonly string[];
}

export async function flushDeferredMail(postfixDir: string, o: FlushOptions = {}): Promise<boolean> {
  const r = await runProgram("/usr/sbin/postqueue", ["-c", postfixDir, "-f"], {
    timeoutMs: 10_000,
    wrap: o.wrap ?? [],
  });
  if (r.code !== 0) o.log?.warn("postqueue -f failed: deferred mail waits for its retry", { error: r.stderr.trim() });
  return r.code === 0;
}
