// Choosing a new key: its algorithm (rsa, ed25519 or both) and a selector never used before by the
// domain. The record itself (name and TXT value) is controller/dns/dkim-txt.ts.
import { invalid } from "../../common/errors.ts";
import { parseDkimSelector } from "../../common/validation/index.ts";
import type { DkimAlgorithm } from "./dkim-keygen.ts";

export type AlgorithmChoice = "rsa" | "ed25519" | "both";

export function parseAlgorithm(value: string | undefined): AlgorithmChoice {
  const v = (value ?? "rsa").toLowerCase();
  if (v !== "rsa" && v !== "ed25519" && v !== "both")
    throw invalid("algorithm", `'${(value ?? "").slice(0, 24)}' is not rsa, ed25519 or both`);
  return v;
}

/**
 * Selectors for new keys. Given: one DNS label (no dots or slashes: it names a DNS label and a key
 * file); with `both` it is a prefix, `<S>-rsa` and `<S>-ed25519`. Default: `<algo>-<yyyymmdd>`,
 * with `-2`, `-3`… when the domain already has that selector (two rotations on one day).
 */
export function newSelectors(
  choice: AlgorithmChoice,
  given: string | undefined,
  taken: ReadonlySet<string>,
  now = new Date(),
): Array<{ algorithm: DkimAlgorithm; selector: string }> {
  const algorithms: DkimAlgorithm[] = choice === "both" ? ["rsa", "ed25519"] : [choice];
  const base = given === undefined ? undefined : parseDkimSelector(given, "selector");
  return algorithms.map((algorithm) => {
    const short = algorithm === "rsa" ? "rsa" : "ed25519";
    if (base !== undefined) {
      const selector = parseDkimSelector(choice === "both" ? `${base}-${short}` : base, "selector");
      if (taken.has(selector))
        throw invalid(
          "selector",
          `${selector} is already used by this domain; pick another (selectors are never reused)`,
        );
      return { algorithm, selector };
    }
    const day = now.toISOString().slice(0, 10).replace(/-/g, "");
    let selector = `${short}-${day}`;
    for (let n = 2; taken.has(selector); n++) selector = `${short}-${day}-${n}`;
    return { algorithm, selector };
  });
}
