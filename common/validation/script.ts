// Homograph defence for internationalised domain labels, a practical subset of UTS #39:
// 1. Mixed script: the letters of one label come from one script, except the combinations real
//    writing systems use (UTS #39 "highly restrictive"): Latin with Han + Hiragana + Katakana
//    (Japanese), Latin with Han + Hangul (Korean), Latin with Han + Bopomofo (Chinese).
//    "раураl" (Cyrillic а/р/у mixed with Latin l) is refused; "日本語テキスト" is accepted.
// 2. Whole-script Cyrillic lookalikes (as browsers do): a label written only with Cyrillic letters
//    that all look like Latin ones ("аррӏе") is refused unless the top-level label is Cyrillic too.
// Not covered (would need the Unicode confusables data, a dependency we do not take): other
// whole-script confusables (Greek "ορ", Armenian), and digit lookalikes such as Arabic-Indic ١.
import { invalid } from "../errors.ts";
import { show } from "./text.ts";

const SCRIPTS: ReadonlyArray<readonly [string, RegExp]> = [
  ["Latin", /\p{Script=Latin}/u],
  ["Greek", /\p{Script=Greek}/u],
  ["Cyrillic", /\p{Script=Cyrillic}/u],
  ["Armenian", /\p{Script=Armenian}/u],
  ["Hebrew", /\p{Script=Hebrew}/u],
  ["Arabic", /\p{Script=Arabic}/u],
  ["Devanagari", /\p{Script=Devanagari}/u],
  ["Bengali", /\p{Script=Bengali}/u],
  ["Tamil", /\p{Script=Tamil}/u],
  ["Telugu", /\p{Script=Telugu}/u],
  ["Kannada", /\p{Script=Kannada}/u],
  ["Malayalam", /\p{Script=Malayalam}/u],
  ["Gujarati", /\p{Script=Gujarati}/u],
  ["Gurmukhi", /\p{Script=Gurmukhi}/u],
  ["Thai", /\p{Script=Thai}/u],
  ["Lao", /\p{Script=Lao}/u],
  ["Georgian", /\p{Script=Georgian}/u],
  ["Ethiopic", /\p{Script=Ethiopic}/u],
  ["Khmer", /\p{Script=Khmer}/u],
  ["Hangul", /\p{Script=Hangul}/u],
  ["Hiragana", /\p{Script=Hiragana}/u],
  ["Katakana", /\p{Script=Katakana}/u],
  ["Bopomofo", /\p{Script=Bopomofo}/u],
  ["Han", /\p{Script=Han}/u],
];

/** Script sets (besides Latin) that may share a label. */
const ALLOWED_MIXES: ReadonlyArray<ReadonlySet<string>> = [
  new Set(["Han", "Hiragana", "Katakana"]),
  new Set(["Han", "Hangul"]),
  new Set(["Han", "Bopomofo"]),
];

/** Cyrillic letters that render like Latin ones (the set browsers use for the same check). */
const CYRILLIC_LATIN_LOOKALIKES = /^[асԁеһіјӏорԛѕԝхуъьҽпгѵѡ]+$/u;

function scriptOf(letter: string): string {
  for (const [name, re] of SCRIPTS) if (re.test(letter)) return name;
  return `other (${letter})`;
}

export function labelScripts(label: string): Set<string> {
  const scripts = new Set<string>();
  for (const ch of label) if (/\p{L}/u.test(ch)) scripts.add(scriptOf(ch));
  return scripts;
}

/** Refuse confusable labels; `labels` are U-labels (Unicode form), the last one is the TLD. */
export function checkLabelScripts(labels: readonly string[], field: string): void {
  const tldScripts = labelScripts(labels.at(-1) ?? "");
  for (const label of labels) {
    const scripts = labelScripts(label);
    if (scripts.size > 1) {
      const rest = [...scripts].filter((s) => s !== "Latin");
      if (!ALLOWED_MIXES.some((mix) => rest.every((s) => mix.has(s)))) {
        throw invalid(
          field,
          `domain label ${show(label)} mixes ${[...scripts].join(" and ")} letters, a common spoofing trick; write each label in one script`,
        );
      }
    }
    const letters = [...label].filter((ch) => /\p{L}/u.test(ch)).join("");
    if (letters !== "" && CYRILLIC_LATIN_LOOKALIKES.test(letters) && !tldScripts.has("Cyrillic")) {
      throw invalid(
        field,
        `domain label ${show(label)} is Cyrillic letters that look like Latin ones, a common spoofing trick; use a Cyrillic top-level domain or type the Latin name`,
      );
    }
  }
}
