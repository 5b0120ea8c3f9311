// Scale harness only: the messages between swarm-process.ts (parent) and swarm-child.ts.

/** Parent → child: enroll and start these agents; or stop them all and exit. */
export type ParentRequest =
  | { id: number; op: "add"; names: string[]; concurrency: number }
  | { id: number; op: "hasMailbox"; name: string; address: string }
  | { id: number; op: "close" };

/** Child → parent: the answer to a ParentRequest. */
export type ChildReply =
  | { id: number; ok: true; agents: Array<{ name: string; home: string; address: string }>; found?: boolean }
  | { id: number; ok: false; error: string };

/** Child → parent: a join token, for a new vnode at `address` or again for `name`. */
export interface ChildRequest {
  ask: number;
  op: "addVnode" | "newToken";
  name: string;
  address: string;
}

/** Parent → child: the answer to a ChildRequest. */
export type ParentReply = { ask: number; ok: true; token: string } | { ask: number; ok: false; error: string };
