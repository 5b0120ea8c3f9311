// The agent's lease fence: the highest lease epoch seen is kept (on disk, across restarts) and an
// older one is refused with FAILED_PRECONDITION naming both epochs; epoch 0 is unfenced.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { NetservaError } from "../../common/errors.ts";
import { createLeaseFence } from "../../agent/server/lease-fence.ts";

const dirs: string[] = [];
function stateFile(): string {
  const dir = mkdtempSync(join(tmpdir(), "nsm-fence-"));
  dirs.push(dir);
  return join(dir, "lease-epoch.json");
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function refusal(run: () => void): NetservaError {
  try {
    run();
  } catch (error) {
    if (error instanceof NetservaError) return error;
    throw error;
  }
  throw new Error("expected a refusal");
}

describe("lease fence", () => {
  it("admits equal and newer epochs and refuses an older one, naming both", () => {
    const fence = createLeaseFence({ file: stateFile() });
    fence.admit(3n);
    fence.admit(3n);
    fence.admit(5n);
    expect(fence.highest).toBe(5n);
    const error = refusal(() => fence.admit(4n));
    expect(error.code).toBe("failed_precondition");
    expect(error.field).toBe("meta.lease_epoch");
    expect(error.message).toContain("lease epoch 4");
    expect(error.message).toContain("epoch 5");
    expect(fence.highest).toBe(5n);
  });

  it("lets epoch 0 (one controller, no lease) through whatever it has seen", () => {
    const fence = createLeaseFence({ file: stateFile() });
    fence.admit(0n);
    fence.admit(7n);
    fence.admit(0n);
    expect(fence.highest).toBe(7n);
  });

  it("remembers the highest epoch across a restart (the state file)", () => {
    const file = stateFile();
    createLeaseFence({ file }).admit(9n);
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ epoch: "9" });
    const restarted = createLeaseFence({ file });
    expect(restarted.highest).toBe(9n);
    expect(restarted.problem).toBeUndefined();
    expect(refusal(() => restarted.admit(8n)).code).toBe("failed_precondition");
  });

  it("a refused epoch writes nothing", () => {
    const file = stateFile();
    const fence = createLeaseFence({ file });
    fence.admit(6n);
    refusal(() => fence.admit(2n));
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ epoch: "6" });
  });

  it("starts from none on a torn file and says so", () => {
    const file = stateFile();
    writeFileSync(file, '{"epo');
    const fence = createLeaseFence({ file });
    expect(fence.highest).toBe(0n);
    expect(fence.problem).toContain("not valid JSON");
    fence.admit(1n);
    expect(fence.highest).toBe(1n);
  });
});
