// Cost ceilings for stored password hashes. A hash carries its own cost, and Dovecot's auth
// workers pay it on every login attempt for that address: one imported hash with absurd
// parameters (SHA-crypt rounds=999999999, bcrypt cost 31, Argon2 with gigabytes of memory)
// turns each attempt into minutes of CPU or gigabytes of memory. The controller refuses such a
// hash at the edge and the agent again before it writes the lookup row. The ceilings leave room
// above today's defaults (SHA-crypt 5,000 rounds, bcrypt 10-12, Dovecot's Argon2 64 MiB/3/1).

export const HASH_COST_LIMITS = {
  shaCryptRounds: 50_000,
  bcryptCost: 13,
  argon2MemoryKiB: 256 * 1024,
  argon2Passes: 8,
  argon2Parallelism: 4,
} as const;

const L = HASH_COST_LIMITS;
const fmt = (n: number): string => n.toLocaleString("en-US");

/**
 * Why the cost parameters of a crypt-style hash ("{SCHEME}" prefix optional) are refused, or
 * undefined when they are within the limits or the hash names no cost we know. Only the
 * parameters are read: the scheme itself is for the caller's own format check.
 */
export function hashCostProblem(hash: string): string | undefined {
  const body = hash.replace(/^\{[A-Z0-9-]{1,32}\}/, "");
  const sha = /^\$([56])\$rounds=([0-9]+)\$/.exec(body);
  if (sha) {
    const rounds = Number(sha[2]);
    if (rounds > L.shaCryptRounds)
      return `SHA${sha[1] === "5" ? "256" : "512"}-CRYPT rounds=${sha[2]} exceed the limit of ${fmt(L.shaCryptRounds)} (default 5,000): every login would pay for them`;
    return undefined;
  }
  const bcrypt = /^\$2[abxy]?\$([0-9]+)\$/.exec(body);
  if (bcrypt) {
    const cost = Number(bcrypt[1]);
    if (cost > L.bcryptCost)
      return `bcrypt cost ${bcrypt[1]} exceeds the limit of ${L.bcryptCost} (2^${L.bcryptCost} rounds): every login would pay for it`;
    return undefined;
  }
  const argon = /^\$(argon2(?:id|i|d))\$(?:v=[0-9]+\$)?([^$]*)\$/.exec(body);
  if (argon) {
    const params = new Map(
      (argon[2] ?? "").split(",").map((kv): [string, string] => [kv.split("=")[0] ?? "", kv.split("=")[1] ?? ""]),
    );
    const name = argon[1] === "argon2id" ? "Argon2id" : argon[1] === "argon2i" ? "Argon2i" : "Argon2d";
    const [m, t, p] = ["m", "t", "p"].map((k) => {
      const v = params.get(k);
      return v !== undefined && /^[0-9]+$/.test(v) ? Number(v) : undefined;
    });
    if (m === undefined || t === undefined || p === undefined)
      return `${name} parameters must be m=<KiB>,t=<passes>,p=<lanes>`;
    if (m > L.argon2MemoryKiB)
      return `${name} memory m=${m} KiB exceeds the limit of ${fmt(L.argon2MemoryKiB)} KiB (256 MiB): every login would allocate it`;
    if (t > L.argon2Passes)
      return `${name} passes t=${t} exceed the limit of ${L.argon2Passes}: every login would pay for them`;
    if (p > L.argon2Parallelism)
      return `${name} parallelism p=${p} exceeds the limit of ${L.argon2Parallelism}: every login would occupy that many threads`;
    return undefined;
  }
  return undefined;
}
