// The hash thread's body (hash-worker.ts starts it): SHA512-CRYPT with all its rounds in one call
// into WebAssembly (sha512-rounds.wat), one request at a time: nothing else runs on this thread.
import { parentPort } from "node:worker_threads";
import { sha512CryptWhole } from "./sha512-crypt.ts";
import type { ThreadReply, ThreadRequest } from "./hash-worker.ts";

const port = parentPort;
if (port) {
  port.on("message", (request: ThreadRequest) => {
    let reply: ThreadReply;
    try {
      reply = { id: request.id, hash: sha512CryptWhole(request.password, request.settings) };
    } catch (error) {
      reply = { id: request.id, error: String(error) };
    }
    port.postMessage(reply);
  });
  port.postMessage({ ready: true } satisfies ThreadReply);
}
