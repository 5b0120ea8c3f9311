// Who is on the other end of an admin-socket connection, as the kernel knows it. Node exposes no
// SO_PEERCRED, and /proc/net/unix does not say which socket is connected to which. The kernel's
// sock_diag interface does: `ss -xnH` (iproute2) lists every unix socket with its inode and its
// peer's inode. Our end's inode comes from fstat of the accepted descriptor. The client names its
// pid, and that claim counts only once the kernel confirms it: /proc/PID/fd holds the peer's
// socket; its real uid then comes from /proc/PID/status. Without a claim that checks out, `ss
// -xnpH` finds the holder, which walks every process's descriptors: its cost grows with every
// socket on the host (a controller with a thousand agent links, a swarm of agents next to it),
// and every forwarded command waited for it. Serve reads the table through a helper process
// (socket-table.ts): a spawn from serve itself cost more the larger serve's heap. When the
// lookup fails (no ss, the client already gone, a root client seen by a non-root daemon) the
// uid stays unknown and the log says so.
import { fstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import type { Socket } from "node:net";
import { timed } from "../../common/phase-timing.ts";
import { readSocketTable, type SocketTable } from "./socket-table.ts";

export interface AdminPeer {
  pid: number | undefined;
  uid: number | undefined;
  user: string | undefined;
  /** How the pid was found: the client's claim checked against its descriptors, or a scan of
   *  every process's (the claim absent or wrong). */
  foundBy?: "claim" | "scan";
}

const UNKNOWN: AdminPeer = { pid: undefined, uid: undefined, user: undefined };

function socketInode(socket: Socket): number | undefined {
  // The accepted descriptor: libuv's pipe handle carries it (not in Node's public types).
  const handle: unknown = Reflect.get(socket, "_handle");
  const fd: unknown = handle !== null && typeof handle === "object" ? Reflect.get(handle, "fd") : undefined;
  if (typeof fd !== "number" || fd < 0) return undefined;
  try {
    return fstatSync(fd).ino;
  } catch {
    return undefined;
  }
}

interface SsRow {
  inode: number;
  peerInode: number;
  pids: number[];
}

/** Rows of `ss -xnpH`: `u_str ESTAB 0 0 <local> <inode> <peer> <peer inode> [users:((…))]`. */
export function parseSsUnix(text: string): SsRow[] {
  const rows: SsRow[] = [];
  for (const line of text.split("\n")) {
    const m = /\s(\d+)\s+\S+\s+(\d+)(?:\s+users:\((.*)\))?\s*$/.exec(line);
    if (!m) continue;
    const pids = [...(m[3] ?? "").matchAll(/pid=(\d+)/g)].map((p) => Number(p[1]));
    rows.push({ inode: Number(m[1]), peerInode: Number(m[2]), pids });
  }
  return rows;
}

/** Whether process `pid` holds the unix socket with this inode among its descriptors. */
function holdsSocket(pid: number, inode: number): boolean {
  const dir = `/proc/${pid}/fd`;
  try {
    for (const fd of readdirSync(dir))
      try {
        if (readlinkSync(`${dir}/${fd}`) === `socket:[${inode}]`) return true;
      } catch {
        /* closed meanwhile */
      }
  } catch {
    /* no such process, or not ours to read */
  }
  return false;
}

function realUid(pid: number): number | undefined {
  try {
    const m = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function userName(uid: number): string | undefined {
  try {
    for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
      const [name, , id] = line.split(":");
      if (name && id === String(uid)) return name;
    }
  } catch {
    /* no passwd file: the uid alone */
  }
  return undefined;
}

export interface AdminPeerLookup {
  /** Finishes the lookup with the pid the client names (undefined: none named). */
  resolve(claimedPid: number | undefined): Promise<AdminPeer>;
}

/** Starts the lookup at once (the kernel's socket table, while the request is read). The table
 *  comes from `tables` (serve's helper process, socket-table.ts), else from a spawn here. */
export function lookupAdminPeer(
  socket: Socket,
  tables: Pick<SocketTable, "read"> = { read: readSocketTable },
): AdminPeerLookup {
  const inode = socketInode(socket);
  const table = inode === undefined ? Promise.resolve("") : timed("admin.peer.table", () => tables.read(false));
  return {
    async resolve(claimedPid) {
      if (inode === undefined) return UNKNOWN;
      const peerInode = parseSsUnix(await table).find((r) => r.inode === inode)?.peerInode;
      let pid: number | undefined;
      let foundBy: AdminPeer["foundBy"];
      if (peerInode !== undefined && claimedPid !== undefined && holdsSocket(claimedPid, peerInode)) {
        pid = claimedPid;
        foundBy = "claim";
      } else {
        const rows = parseSsUnix(await timed("admin.peer.scan", () => tables.read(true)));
        const ours = rows.find((r) => r.inode === inode);
        // A socket shared by a parent and its child lists both: the uid is the same for all of them.
        pid = ours ? rows.find((r) => r.inode === ours.peerInode)?.pids[0] : undefined;
        foundBy = "scan";
      }
      if (pid === undefined) return UNKNOWN;
      const uid = realUid(pid);
      return { pid, uid, user: uid === undefined ? undefined : userName(uid), foundBy };
    },
  };
}

/** The command log's actor for a forwarded command: what the client calls itself, and the
 *  uid the kernel says it runs as (e.g. `alice (uid 0 root)` for `sudo shvmail …`). */
export function forwardedActor(claimed: string | undefined, peer: AdminPeer): string {
  const who = claimed && claimed.length > 0 ? claimed.slice(0, 64) : (peer.user ?? "unknown");
  if (peer.uid === undefined) return `${who} (uid unknown)`;
  return `${who} (uid ${peer.uid}${peer.user ? ` ${peer.user}` : ""})`;
}
