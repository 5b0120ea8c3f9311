// Text from a vnode (agent versions, health details, probe transcripts, errors) is the peer's
// word: before it reaches an operator's terminal, control characters go. An escape sequence in an
// agent's version string could otherwise rewrite the screen, retitle the window or hide a line;
// bidi overrides could reorder what is shown. JSON output needs none of this (it escapes them).

// C0 and C1 controls, DEL, and the bidi embedding/override/isolate characters.
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
// eslint-disable-next-line no-control-regex
const UNSAFE_KEEP_LINES = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/** One cell or line: every control character becomes '?'. */
export function terminalText(text: string): string {
  return text.replace(UNSAFE, "?");
}

/** A block of lines: line feeds stay, every other control character becomes '?'. */
export function terminalLines(text: string): string {
  return text.replace(UNSAFE_KEEP_LINES, "?");
}
