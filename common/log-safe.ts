// Values that reach logs and the command log come from hostile input too: control characters
// (NUL, CR/LF) are shown as escapes and long strings are cut, so a record can always be written
// (PostgreSQL refuses NUL in text and jsonb) and read without surprises.

const MAX_STRING = 512;

export function safeText(text: string): string {
  const cut = text.length > MAX_STRING ? `${text.slice(0, MAX_STRING)}…(${text.length} chars)` : text;
  return cut.replace(
    // eslint-disable-next-line no-control-regex
    /[\u0000-\u001f\u007f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g,
    (c) => `\\u{${c.charCodeAt(0).toString(16)}}`,
  );
}

export function safeValue(value: unknown, depth = 0): unknown {
  if (typeof value === "string") return safeText(value);
  if (depth > 6 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.slice(0, 100).map((v) => safeValue(v, depth + 1));
  return Object.fromEntries(
    Object.entries(value)
      .slice(0, 100)
      .map(([k, v]) => [safeText(k), safeValue(v, depth + 1)]),
  );
}
