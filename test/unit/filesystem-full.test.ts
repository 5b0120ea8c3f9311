// When mail:status calls a filesystem full, and what it says that stops: the same numbers as the
// NetservaFilesystemFull alert (under 16 MiB or 1 % free, or no inode left).
import { describe, expect, it } from "vitest";
import { fullProblem, isFull } from "../../controller/health/filesystem-full.ts";
import type { FsRoleJson } from "../../controller/health/health-json.ts";

const GiB = 1024 ** 3;
const fs = (o: Partial<FsRoleJson>): FsRoleJson => ({
  path: "/srv",
  sizeBytes: 100 * GiB,
  usedBytes: 50 * GiB,
  availableBytes: 50 * GiB,
  usedRatio: 0.5,
  roles: ["mail"],
  rolePaths: ["/srv"],
  inodes: 1_000_000,
  freeInodes: 500_000,
  ...o,
});

describe("a full filesystem", () => {
  it("is full under 16 MiB free, under 1 % free, or with no inode left; not otherwise", () => {
    expect(isFull(fs({}))).toBe(false);
    expect(isFull(fs({ availableBytes: 16 * 1024 * 1024 - 1 }))).toBe(true);
    expect(isFull(fs({ availableBytes: 0.009 * 100 * GiB }))).toBe(true);
    expect(isFull(fs({ availableBytes: 0.011 * 100 * GiB }))).toBe(false);
    expect(isFull(fs({ freeInodes: 0 }))).toBe(true);
    // A filesystem without a fixed number of inodes reports 0 and 0: not full for that.
    expect(isFull(fs({ inodes: 0, freeInodes: 0 }))).toBe(false);
    // A small disk with room: 20 MiB free of 30 MiB.
    expect(isFull(fs({ sizeBytes: 30 * 1024 * 1024, availableBytes: 20 * 1024 * 1024 }))).toBe(false);
  });

  it("names every directory on it and what each role stops, once", () => {
    expect(fullProblem(fs({ availableBytes: 0 }))).toBe(
      "filesystem of /srv (mail) is full: 0 bytes free; delivery to mailboxes is deferred",
    );
    expect(
      fullProblem(
        fs({
          path: "/var/spool/postfix",
          roles: ["queue", "config", "state"],
          rolePaths: ["/var/spool/postfix", "/etc/postfix", "/var/lib/netserva-mail"],
          availableBytes: 4096,
        }),
      ),
    ).toBe(
      "filesystem of /var/spool/postfix (queue), /etc/postfix (config), /var/lib/netserva-mail (state) is full: " +
        "4096 bytes free; Postfix answers 452 4.3.1 to new mail; config and mailbox changes are refused",
    );
    expect(fullProblem(fs({ freeInodes: 0 }))).toContain("is full: no inode free;");
  });
});
