// The toolchain the rest of the suite relies on: Node 24 from the pinned devDependency, exact pins
// where mixed versions break things, and the throwaway PostgreSQL that scripts/test provides.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

interface PackageJson {
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as PackageJson;
const allDependencies: Record<string, string> = { ...pkg.dependencies, ...pkg.devDependencies };
const exactVersion = /^\d+\.\d+\.\d+$/;

describe("toolchain", () => {
  it("runs on Node >= 24", () => {
    const major = Number(process.versions.node.split(".")[0]);
    expect(major, `tests run on Node ${process.versions.node}`).toBeGreaterThanOrEqual(24);
  });

  it("pins the node devDependency to an exact version >= 24", () => {
    const node = pkg.devDependencies?.["node"];
    expect(node).toMatch(exactVersion);
    expect(Number(node?.split(".")[0])).toBeGreaterThanOrEqual(24);
  });

  it("pins every @mikro-orm/* package to one exact version", () => {
    const mikro = Object.entries(allDependencies).filter(([name]) => name.startsWith("@mikro-orm/"));
    expect(mikro.length).toBeGreaterThan(0);
    for (const [name, version] of mikro) expect(version, name).toMatch(exactVersion);
    expect(new Set(mikro.map(([, version]) => version)).size).toBe(1);
  });

  it.skipIf(process.env["NETSERVA_TEST_RUNNER"] !== "1")(
    "gets a PostgreSQL that accepts connections and CREATE DATABASE from scripts/test",
    async () => {
      const url = process.env["DATABASE_URL_TEST"];
      expect(url, "DATABASE_URL_TEST").toMatch(/^postgresql:\/\//);
      const { MikroORM } = await import("@mikro-orm/postgresql");
      const orm = await MikroORM.init({
        clientUrl: url,
        entities: [],
        discovery: { warnWhenNoEntities: false },
      });
      try {
        const conn = orm.em.getConnection();
        const [row] = await conn.execute<{ version: string }[]>("select version() as version");
        expect(row?.version).toMatch(/^PostgreSQL 15\./);
        const db = `toolchain_${process.pid}_${Date.now()}`;
        await conn.execute(`create database ${db}`);
        await conn.execute(`drop database ${db}`);
      } finally {
        await orm.close(true);
      }
    },
  );
});
