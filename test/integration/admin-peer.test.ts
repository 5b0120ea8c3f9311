// The admin socket's peer lookup (controller/cli/admin-peer.ts): the pid a client names is taken
// only when the kernel confirms that process holds the other end of the connection; a wrong or
// absent claim falls back to the scan of every process's descriptors, which finds the real one.
// The scan's cost grows with every socket on the host (a thousand agent links), so the checked
// claim is what a well-behaved client's command waits for. Serve reads the table through a helper
// process, so that none of it forks serve. Real unix sockets, real `ss`.
import { spawn } from "node:child_process";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lookupAdminPeer } from "../../controller/cli/admin-peer.ts";
import { createSocketTable, type SocketTable } from "../../controller/cli/socket-table.ts";

let dir: string;
let server: Server;
const accepted: Socket[] = [];
const clients: Socket[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "nsm-admin-peer-"));
  server = createServer((socket) => void accepted.push(socket));
  await new Promise<void>((resolve) => server.listen(join(dir, "admin.sock"), resolve));
});

afterAll(async () => {
  for (const s of [...accepted, ...clients]) s.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

/** A connection from this process; resolves with the server's end of it. */
async function connection(): Promise<Socket> {
  const before = accepted.length;
  const client = createConnection(join(dir, "admin.sock"));
  clients.push(client);
  await new Promise<void>((resolve) => client.once("connect", resolve));
  for (let i = 0; i < 200 && accepted.length === before; i++) await new Promise((r) => setTimeout(r, 10));
  const socket = accepted[before];
  if (!socket) throw new Error("no connection accepted");
  return socket;
}

describe("admin socket peer", () => {
  it("takes the client's own pid once the kernel confirms it holds the connection", async () => {
    const peer = await lookupAdminPeer(await connection()).resolve(process.pid);
    expect(peer).toMatchObject({ pid: process.pid, uid: process.getuid?.(), foundBy: "claim" });
  });

  it("finds the real holder by a scan when the claim is absent or names another process", async () => {
    const other = spawn("sleep", ["60"], { stdio: "ignore" });
    try {
      for (const claim of [other.pid, 1, undefined]) {
        const peer = await lookupAdminPeer(await connection()).resolve(claim);
        expect(peer, String(claim)).toMatchObject({ pid: process.pid, uid: process.getuid?.(), foundBy: "scan" });
      }
    } finally {
      other.kill("SIGKILL");
    }
  });
});

/** Counts the child processes this process starts until the returned function is called. */
function countSpawns(): () => number {
  let spawned = 0;
  const onSpawn = (): void => void (spawned += 1);
  subscribe("child_process", onSpawn);
  return () => {
    unsubscribe("child_process", onSpawn);
    return spawned;
  };
}

// Serve reads the table through a helper process (controller/cli/socket-table.ts): a spawn from
// serve forks serve, and that cost grew with serve's heap (a thousand vnode links).
describe("admin socket peer, the table read by the helper process", () => {
  let tables: SocketTable;
  beforeAll(() => void (tables = createSocketTable()));
  afterAll(() => tables.close());

  it("confirms a claim with no process started here: the helper reads the table", async () => {
    await lookupAdminPeer(await connection(), tables).resolve(process.pid); // the helper is up
    const answered = tables.answered;
    const spawned = countSpawns();
    const peer = await lookupAdminPeer(await connection(), tables).resolve(process.pid);
    expect(spawned()).toBe(0);
    expect(tables.answered).toBe(answered + 1);
    expect(peer).toMatchObject({ pid: process.pid, uid: process.getuid?.(), foundBy: "claim" });
  });

  it("scans through the helper too when the claim is wrong", async () => {
    const answered = tables.answered;
    const spawned = countSpawns();
    const peer = await lookupAdminPeer(await connection(), tables).resolve(1);
    expect(spawned()).toBe(0);
    expect(tables.answered).toBe(answered + 2);
    expect(peer).toMatchObject({ pid: process.pid, uid: process.getuid?.(), foundBy: "scan" });
  });

  it("a burst of connections shares tables: two reads, not one each, and every claim confirmed", async () => {
    await tables.read(false); // the helper is up
    const sockets: Socket[] = [];
    for (let i = 0; i < 8; i++) sockets.push(await connection());
    const answered = tables.answered;
    const peers = await Promise.all(sockets.map((socket) => lookupAdminPeer(socket, tables).resolve(process.pid)));
    expect(tables.answered - answered).toBeLessThanOrEqual(2);
    for (const peer of peers) expect(peer).toMatchObject({ pid: process.pid, foundBy: "claim" });
  });

  it("a helper killed under it: the lookup still answers, through one new helper", async () => {
    const pid = tables.helperPid;
    if (pid === undefined) throw new Error("no helper");
    process.kill(pid, "SIGKILL");
    for (let i = 0; i < 200 && tables.helperPid === pid; i++) await new Promise((r) => setTimeout(r, 10));
    expect(tables.helperPid).toBeUndefined();
    const answered = tables.answered;
    const spawned = countSpawns();
    const peer = await lookupAdminPeer(await connection(), tables).resolve(process.pid);
    expect(spawned()).toBe(1); // the new helper, no `ss` here
    expect(tables.answered).toBe(answered + 1);
    expect(tables.helperPid).not.toBe(pid);
    expect(peer).toMatchObject({ pid: process.pid, foundBy: "claim" });
  });
});
