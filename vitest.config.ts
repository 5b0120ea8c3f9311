import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Removes what the helpers could not (test/helpers/temp-dirs.ts) after each file.
    setupFiles: ["test/helpers/after-file.ts"],
    testTimeout: 60_000,
    hookTimeout: 300_000,
    pool: "forks",
    fileParallelism: true,
    maxWorkers: 2,
    // Files and the tests inside them run in a random order (vitest prints the seed): no test may
    // lean on another's leftovers. Reproduce an order with --sequence.seed=N
    // (scripts/test: NETSERVA_TEST_SEED=N).
    sequence: { shuffle: { files: true, tests: true } },
  },
});
