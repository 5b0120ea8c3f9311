// A client process for the agent's hostile-client test: many large Pings in flight on one
// connection, "first" on stdout when the first answer arrives. The test SIGKILLs it then, so the
// agent is mid-way through writing the other answers into a connection whose process is gone.
// Usage: node ping-flood-client.ts HOST:PORT SERVERNAME CA CERT KEY
import { readFileSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AgentService } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { CommandMetaSchema } from "../../common/gen/netserva/mail/v1/command_pb.ts";

const [address, servername, ca, cert, key] = process.argv.slice(2);
const client = createClient(
  AgentService,
  createGrpcTransport({
    baseUrl: `https://${address}`,
    nodeOptions: {
      ca: readFileSync(ca ?? "", "utf8"),
      cert: readFileSync(cert ?? "", "utf8"),
      key: readFileSync(key ?? "", "utf8"),
      servername,
    },
  }),
);
const payload = new Uint8Array(60 * 1024).fill(0x61);
let first = true;
for (let i = 0; i < 64; i++) {
  client
    .ping({ meta: create(CommandMetaSchema, { requestId: `flood-${process.pid}-${i}` }), payload })
    .then(() => {
      if (first) process.stdout.write("first\n");
      first = false;
    })
    .catch(() => undefined);
}
