// Runs in every test file (vitest.config.ts setupFiles): what the helpers left in /tmp goes
// after the file's last test and hook.
import { afterAll } from "vitest";
import { removeTrackedDirs } from "./temp-dirs.ts";

afterAll(() => removeTrackedDirs());
