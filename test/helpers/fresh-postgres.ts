// A fresh PostgreSQL database per test file or bench run, made through the admin connection of
// the throwaway cluster scripts/test starts, so runs never see each other's rows.
import { randomUUID } from "node:crypto";
import { openDatabase } from "../../controller/db/open-database.ts";

/** Creates `nsm_<prefix>_<random>` on the server of `url` and returns its URL. */
export async function freshPostgresUrl(url: string, prefix: string): Promise<string> {
  if (!/^[a-z][a-z0-9]{0,15}$/.test(prefix)) throw new Error(`freshPostgresUrl: bad prefix ${prefix}`);
  const admin = await openDatabase({ url });
  const name = `nsm_${prefix}_${randomUUID().replace(/-/g, "").slice(0, 12)}`;
  try {
    await admin.em().getConnection().execute(`create database ${name}`);
  } finally {
    await admin.close();
  }
  const target = new URL(url);
  target.pathname = `/${name}`;
  return target.toString();
}
