// Scale harness only: a swarm (swarm.ts) in a process of its own, driven over the IPC channel by
// swarm-process.ts. scripts/bench-fleet runs the bulk of its agents here so the agent whose push
// it times, and the timing itself, do not share one event loop with a thousand health streams;
// each process's CPU is then reported on its own. Registering a vnode goes back to the parent
// (it owns the controller's CLI), so this process only enrolls and runs agents.
import { createSwarm } from "./swarm.ts";
import type { ChildReply, ChildRequest, ParentReply, ParentRequest } from "./swarm-protocol.ts";

const send = (message: ChildRequest | ChildReply): void => void process.send?.(message);

let nextAsk = 0;
const waiting = new Map<number, { resolve: (value: string) => void; reject: (error: Error) => void }>();
/** Asks the parent for a join token (a new vnode's, or a fresh one after a failed enrollment). */
function ask(op: ChildRequest["op"], name: string, address = ""): Promise<string> {
  const ask = ++nextAsk;
  return new Promise((resolve, reject) => {
    waiting.set(ask, { resolve, reject });
    send({ ask, op, name, address });
  });
}

const dir = process.argv[2];
const controller = process.argv[3];
if (!dir || !controller || !process.send) {
  process.stderr.write("swarm-child: started without a directory, a controller and an IPC channel\n");
  process.exit(2);
}
const swarm = createSwarm({
  dir,
  controller,
  addVnode: (name, address) => ask("addVnode", name, address),
  newToken: (name) => ask("newToken", name),
});

async function answer(request: ParentRequest): Promise<void> {
  try {
    if (request.op === "add") {
      const added = await swarm.addMany(request.names, request.concurrency);
      send({
        id: request.id,
        ok: true,
        agents: added.map((a) => ({ name: a.name, home: a.home, address: a.address })),
      });
    } else if (request.op === "hasMailbox") {
      const found = swarm.get(request.name)?.host.mailboxes.has(request.address) === true;
      send({ id: request.id, ok: true, agents: [], found });
    } else {
      await swarm.close();
      send({ id: request.id, ok: true, agents: [] });
      process.disconnect();
    }
  } catch (error) {
    send({ id: request.id, ok: false, error: error instanceof Error ? error.message : String(error) });
  }
}

process.on("message", (message: ParentRequest | ParentReply) => {
  if ("ask" in message) {
    const pending = waiting.get(message.ask);
    waiting.delete(message.ask);
    if (message.ok) pending?.resolve(message.token);
    else pending?.reject(new Error(message.error));
    return;
  }
  void answer(message);
});
// The parent gone (killed, crashed): stop the agents rather than run on unattended.
process.on("disconnect", () => void swarm.close().finally(() => process.exit(0)));
