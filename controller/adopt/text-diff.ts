// A line diff of two small text files (daemon configs) for people: "-" lines gone, "+" lines new,
// two lines of context around each change, "@@ line N" before each hunk. LCS by dynamic
// programming: configs are hundreds of lines; past MAX_CELLS it says so instead of diffing.

const MAX_CELLS = 4_000_000;
const CONTEXT = 2;

export function lineDiff(before: string, after: string): string[] {
  if (before === after) return [];
  const a = before.split("\n");
  const b = after.split("\n");
  if (a.length * b.length > MAX_CELLS) return [`(${a.length} lines → ${b.length} lines: too large to show)`];
  // lcs[i][j]: length of the longest common subsequence of a[i..] and b[j..].
  const width = b.length + 1;
  const lcs = new Uint32Array((a.length + 1) * width);
  for (let i = a.length - 1; i >= 0; i--)
    for (let j = b.length - 1; j >= 0; j--)
      lcs[i * width + j] =
        a[i] === b[j]
          ? (lcs[(i + 1) * width + j + 1] ?? 0) + 1
          : Math.max(lcs[(i + 1) * width + j] ?? 0, lcs[i * width + j + 1] ?? 0);
  const ops: Array<{ sign: " " | "-" | "+"; text: string; line: number }> = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      ops.push({ sign: " ", text: a[i] ?? "", line: j + 1 });
      i++;
      j++;
    } else if (j < b.length && (i === a.length || (lcs[i * width + j + 1] ?? 0) > (lcs[(i + 1) * width + j] ?? 0))) {
      ops.push({ sign: "+", text: b[j] ?? "", line: j + 1 });
      j++;
    } else {
      ops.push({ sign: "-", text: a[i] ?? "", line: j + 1 });
      i++;
    }
  }
  const show = ops.map((op, k) => ops.slice(Math.max(0, k - CONTEXT), k + CONTEXT + 1).some((o) => o.sign !== " "));
  const out: string[] = [];
  for (let k = 0; k < ops.length; k++) {
    const op = ops[k];
    if (!op || !show[k]) continue;
    if (k === 0 || !show[k - 1]) out.push(`@@ line ${op.line}`);
    out.push(`${op.sign} ${op.text}`);
  }
  return out;
}
