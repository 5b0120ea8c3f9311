// Per-mailbox storage use, measured on disk: every mailbox of the lookup DB, its Maildir folders'
// cur/ and new/ listed (Dovecot writes the size into the file name as ",S=<bytes>", so a listing
// is enough; stat only when it is missing). Limits come from the same rows Dovecot enforces.
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";

export interface MailboxUsageRow {
  address: string;
  usedBytes: number;
  limitBytes: number;
  messages: number;
}

async function folderUsage(dir: string): Promise<{ bytes: number; messages: number }> {
  let bytes = 0;
  let messages = 0;
  for (const sub of ["cur", "new"]) {
    const names = await readdir(join(dir, sub)).catch(() => [] as string[]);
    for (const name of names) {
      const m = /,S=(\d+)/.exec(name);
      bytes += m ? Number(m[1]) : await stat(join(dir, sub, name)).then((s) => s.size, () => 0);
      messages += 1;
    }
  }
  return { bytes, messages };
}

async function maildirUsage(maildir: string): Promise<{ bytes: number; messages: number }> {
  const folders = [maildir, ...(await readdir(maildir, { withFileTypes: true }).catch(() => []))
    .filter((e) => e.isDirectory() && e.name.startsWith(".") && e.name !== "." && e.name !== "..")
    .map((e) => join(maildir, e.name))];
  let bytes = 0;
  let messages = 0;
  for (const f of folders) {
    const u = await folderUsage(f);
    bytes += u.bytes;
    messages += u.messages;
  }
  return { bytes, messages };
}

export async function scanMailboxUsage(lookupDb: string): Promise<MailboxUsageRow[]> {
  let rows: Array<{ user: string; home: string; quota: number }>;
  const db = new DatabaseSync(lookupDb, { readOnly: true });
  try {
    rows = db.prepare("SELECT user, home, quota FROM vmails ORDER BY user").all() as Array<{ user: string; home: string; quota: number }>;
  } finally {
    db.close();
  }
  const out: MailboxUsageRow[] = [];
  for (const r of rows) {
    const u = await maildirUsage(join(r.home, "Maildir"));
    out.push({ address: r.user, usedBytes: u.bytes, limitBytes: Number(r.quota), messages: u.messages });
  }
  return out;
}
