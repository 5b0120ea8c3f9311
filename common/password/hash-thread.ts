// The hash thread's body (hash-worker.ts starts it): SHA512-CRYPT on its own WebAssembly SHA-512,
// one request at a time, all rounds at once since nothing else runs on this thread.
import { parentPort } from "node:worker_threads";
import { createSHA512 } from "hash-wasm";
import { sha512CryptOn } from "./sha512-crypt.ts";
import type { ThreadReply, ThreadRequest } from "./hash-worker.ts";

const port = parentPort;
if (port) {
  const hasher = await createSHA512();
  port.on("message", (request: ThreadRequest) => {
    sha512CryptOn(hasher, request.password, request.settings).then(
      (hash) => port.postMessage({ id: request.id, hash } satisfies ThreadReply),
      (error: unknown) => port.postMessage({ id: request.id, error: String(error) } satisfies ThreadReply),
    );
  });
  port.postMessage({ ready: true } satisfies ThreadReply);
}
