// ARGON2ID in the PHC string form Dovecot writes and reads ("$argon2id$v=19$m=65536,t=3,p=1$
// <salt>$<hash>", unpadded standard base64), computed by node:crypto's argon2 (Node >= 24.7,
// OpenSSL; no WASM or native addon). Defaults are Dovecot's: 64 MiB, 3 passes, 1 lane,
// 16-byte salt, 32-byte tag.
import { argon2, randomBytes, timingSafeEqual } from "node:crypto";
import { HASH_COST_LIMITS } from "./hash-cost.ts";

export interface Argon2Params {
  memoryKiB: number;
  passes: number;
  parallelism: number;
}

export const DOVECOT_ARGON2: Argon2Params = { memoryKiB: 65536, passes: 3, parallelism: 1 };

const unpadded = (b: Buffer): string => b.toString("base64").replace(/=+$/, "");

function compute(password: string, salt: Buffer, params: Argon2Params, tagLength: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    argon2(
      "argon2id",
      {
        message: Buffer.from(password, "utf8"),
        nonce: salt,
        parallelism: params.parallelism,
        tagLength,
        memory: params.memoryKiB,
        passes: params.passes,
      },
      (err, tag) => (err ? reject(err) : resolve(tag)),
    );
  });
}

export async function argon2idHash(password: string, params: Argon2Params = DOVECOT_ARGON2): Promise<string> {
  const salt = randomBytes(16);
  const tag = await compute(password, salt, params, 32);
  return `$argon2id$v=19$m=${params.memoryKiB},t=${params.passes},p=${params.parallelism}$${unpadded(salt)}$${unpadded(tag)}`;
}

const PHC =
  /^\$argon2id\$v=19\$m=([0-9]{1,8}),t=([0-9]{1,4}),p=([0-9]{1,3})\$([A-Za-z0-9+/]{11,})\$([A-Za-z0-9+/]{16,})$/;

/** True when `encoded` is a well-formed argon2id PHC string (version 19) with sane parameters. */
export function isArgon2idHash(encoded: string): boolean {
  const m = PHC.exec(encoded);
  if (!m) return false;
  const [memory, passes, lanes] = [Number(m[1]), Number(m[2]), Number(m[3])];
  // Bounds keep a hostile stored hash from making verification allocate gigabytes (hash-cost.ts).
  const L = HASH_COST_LIMITS;
  return (
    lanes >= 1 &&
    lanes <= L.argon2Parallelism &&
    passes >= 1 &&
    passes <= L.argon2Passes &&
    memory >= 8 * lanes &&
    memory <= L.argon2MemoryKiB
  );
}

export async function argon2idVerify(password: string, encoded: string): Promise<boolean> {
  const m = PHC.exec(encoded);
  if (!m || !isArgon2idHash(encoded)) return false;
  const params = { memoryKiB: Number(m[1]), passes: Number(m[2]), parallelism: Number(m[3]) };
  const salt = Buffer.from(m[4] ?? "", "base64");
  const expected = Buffer.from(m[5] ?? "", "base64");
  const tag = await compute(password, salt, params, expected.length);
  return timingSafeEqual(tag, expected);
}
