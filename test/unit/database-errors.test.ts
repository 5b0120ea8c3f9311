// Which failures the CLI reports as "the database is unreachable" (exit 5) and which stay what
// they were: a lost connection is not a bug, a constraint violation is not an outage.
import { describe, expect, it } from "vitest";
import { NetservaError, invalid } from "../../common/errors.ts";
import { exitCodeFor } from "../../common/exit-codes.ts";
import { asDatabaseError } from "../../controller/db/database-errors.ts";

function withCode(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

describe("asDatabaseError", () => {
  it.each([
    ["a refused connection", withCode("connect ECONNREFUSED 127.0.0.1:5432", "ECONNREFUSED")],
    ["a reset connection", withCode("read ECONNRESET", "ECONNRESET")],
    ["the pool giving up", new Error("Knex: Timeout acquiring a connection. The pool is probably full.")],
    ["pg-pool's connect timeout", new Error("timeout exceeded when trying to connect")],
    ["pg's query timeout (a silent database)", new Error("Query read timeout")],
    ["pg's connection timeout", new Error("Connection terminated due to connection timeout")],
    ["a server shutting down", withCode("terminating connection due to administrator command", "57P01")],
    ["a wrapped cause", new Error("query failed", { cause: withCode("connect ECONNREFUSED", "ECONNREFUSED") })],
    ["MikroORM's connection exception", Object.assign(new Error("x"), { name: "ConnectionException" })],
  ])("%s is unreachable: exit 5, naming the database", (_what, error) => {
    const mapped = asDatabaseError(error);
    expect(mapped.code).toBe("unavailable");
    expect(exitCodeFor(mapped.code)).toBe(5);
    expect(mapped.message).toMatch(/^the database is unreachable: /);
  });

  it("leaves other failures as they were", () => {
    const unique = withCode('duplicate key value violates unique constraint "x"', "23505");
    expect(asDatabaseError(unique).code).toBe("internal");
    expect(asDatabaseError(new Error("boom")).code).toBe("internal");
    const refused = invalid("domain", "not a domain");
    expect(asDatabaseError(refused)).toBe(refused);
    const opened = new NetservaError("unavailable", "database: cannot open (x)");
    expect(asDatabaseError(opened)).toBe(opened);
  });
});
