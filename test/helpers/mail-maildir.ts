// Reading delivered mail straight from a vnode's maildir: wait (with a deadline, never a sleep)
// until a message with a given Message-ID is in a folder, and pull header fields out of it.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { waitUntil } from "../../agent/process.ts";

/** Path of the delivered file holding `id` in `folder` ("" = INBOX, ".Junk", …). */
export async function waitDelivered(maildir: string, id: string, folder = "", deadlineMs = 10_000): Promise<string> {
  const dir = join(maildir, folder, "new");
  let found = "";
  await waitUntil(
    `${id} in ${maildir}/${folder || "INBOX"}`,
    deadlineMs,
    () => {
      if (!existsSync(dir)) return false;
      found =
        readdirSync(dir)
          .map((f) => join(dir, f))
          .find((f) => readFileSync(f, "utf8").includes(id)) ?? "";
      return found !== "";
    },
    25,
  );
  return found;
}

/** True if `folder` ("" = INBOX, ".Junk", …) holds `id`, in new/ or cur/. */
export function inFolder(maildir: string, id: string, folder = ""): boolean {
  return ["new", "cur"].some((sub) => {
    const dir = join(maildir, folder, sub);
    return existsSync(dir) && readdirSync(dir).some((n) => readFileSync(join(dir, n), "utf8").includes(id));
  });
}

/** True if any folder of the maildir holds `id` (to prove a refused message never arrived). */
export function anywhere(maildir: string, id: string): boolean {
  if (!existsSync(maildir)) return false;
  return ["", ...readdirSync(maildir).filter((d) => d.startsWith("."))].some((f) => inFolder(maildir, id, f));
}

/** The message as it was on the wire (CRLF line endings; Dovecot stores LF). */
export function readCrlf(file: string): string {
  return readFileSync(file, "utf8").replace(/\r?\n/g, "\r\n");
}

/** Values (unfolded lines kept, without the name) of every header field called `name`. */
export function headerValues(message: string, name: string): string[] {
  const head = message.slice(0, message.indexOf("\r\n\r\n"));
  const out: string[] = [];
  let current: string | undefined;
  for (const line of head.split("\r\n")) {
    if (/^[ \t]/.test(line) && current !== undefined) {
      current += `\r\n${line}`;
      continue;
    }
    if (current !== undefined) out.push(current);
    current = line.toLowerCase().startsWith(`${name.toLowerCase()}:`) ? line.slice(name.length + 1) : undefined;
  }
  if (current !== undefined) out.push(current);
  return out;
}
