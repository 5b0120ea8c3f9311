// The join token from a file or from stdin (`--token-file FILE`, `--token-file -`), so it never
// has to sit in argv, where `ps` and shell history show it to every local user.
import { readFileSync } from "node:fs";
import { invalid } from "../../common/errors.ts";

const MAX_TOKEN_FILE_BYTES = 4096;

/** The token in `path` (`-`: stdin): its first non-empty line, surrounding blanks dropped. */
export function readTokenFile(path: string, readStdin: () => string = () => readFileSync(0, "utf8")): string {
  let text: string;
  try {
    text = path === "-" ? readStdin() : readFileSync(path, "utf8");
  } catch (error) {
    const reason = error instanceof Error && "code" in error ? String(error.code) : "unreadable";
    throw invalid("token-file", `cannot read ${path === "-" ? "stdin" : JSON.stringify(path)}: ${reason}`);
  }
  if (text.length > MAX_TOKEN_FILE_BYTES) throw invalid("token-file", "is too large to hold a join token");
  const token = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .find((line) => line.length > 0);
  if (!token) throw invalid("token-file", "is empty: put the join token from `netserva-mail vnode add` in it");
  return token;
}
