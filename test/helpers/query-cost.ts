// The cost of a database operation as counts that do not depend on how busy the machine is:
// the statements it ran, and the rows its reads touched (PostgreSQL's own EXPLAIN ANALYZE of each
// SELECT, re-run with the same parameters). Tests assert these instead of milliseconds.
import type { Database } from "../../controller/db/open-database.ts";

export interface Statement {
  readonly sql: string;
  readonly params: readonly unknown[];
}

export interface QueryCost {
  /** Every statement the operation ran (transaction control included). */
  readonly statements: readonly Statement[];
  /** Rows read by the scans of its SELECTs: returned plus removed by filters, over all loops. */
  readonly rowsRead: number;
}

export interface QueryRecorder {
  /** Pass as DatabaseOptions.onQuery. */
  readonly onQuery: (sql: string, params: readonly unknown[]) => void;
  measure(db: Database, operation: () => Promise<unknown>): Promise<QueryCost>;
}

interface PlanNode {
  "Node Type"?: string;
  "Actual Rows"?: number;
  "Actual Loops"?: number;
  "Rows Removed by Filter"?: number;
  "Rows Removed by Index Recheck"?: number;
  Plans?: PlanNode[];
}

function scannedRows(node: PlanNode): number {
  const own = (node["Node Type"] ?? "").includes("Scan")
    ? ((node["Actual Rows"] ?? 0) +
        (node["Rows Removed by Filter"] ?? 0) +
        (node["Rows Removed by Index Recheck"] ?? 0)) *
      (node["Actual Loops"] ?? 1)
    : 0;
  return own + (node.Plans ?? []).reduce((sum, child) => sum + scannedRows(child), 0);
}

const isSelect = (sql: string): boolean => /^\s*(select|with)\b/i.test(sql) && !/\bfor update\b/i.test(sql);

export function createQueryRecorder(): QueryRecorder {
  let recording: Statement[] | undefined;
  return {
    onQuery(sql, params) {
      recording?.push({ sql, params: [...params] });
    },
    async measure(db, operation) {
      const statements: Statement[] = [];
      recording = statements;
      try {
        await operation();
      } finally {
        recording = undefined;
      }
      let rowsRead = 0;
      const conn = db.em().getConnection();
      for (const s of statements.filter((x) => isSelect(x.sql))) {
        const out = await conn.execute<Array<Record<string, unknown>>>(`explain (analyze, format json) ${s.sql}`, [
          ...s.params,
        ]);
        const plan = out[0]?.["QUERY PLAN"];
        const doc = (typeof plan === "string" ? JSON.parse(plan) : plan) as Array<{ Plan: PlanNode }>;
        for (const p of doc) rowsRead += scannedRows(p.Plan);
      }
      return { statements, rowsRead };
    },
  };
}
