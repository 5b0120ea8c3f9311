// Maildirs in NetServa's layout: created with their modes, symlinks refused, and the whole-state
// heal: Sieve scripts installed, existing homes completed, homes not made yet left to Dovecot,
// mailboxes deleted meanwhile skipped, stopped by its signal, paced by its duty cycle without
// ever holding the event loop for long. Work is counted (calls, directories made), never timed.
import { existsSync, mkdirSync, mkdtempSync, readlinkSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createMaildirs, maildirWork, type HealItem } from "../../agent/mail/maildirs.ts";
import { createVnodePaths, type VnodePaths } from "../../agent/paths.ts";

let root: string;
let paths: VnodePaths;
const owner = { name: "test", uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "maildirs-"));
  paths = createVnodePaths(root);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const items = (n: number, sieve = ""): HealItem[] =>
  Array.from({ length: n }, (_, i) => ({ domain: "h.test", local: `u${i}`, sieve }));

describe("maildirs", () => {
  it("creates home and Maildir{cur,new,tmp} 0700 under a 0750 msg directory, once", () => {
    const md = createMaildirs(paths, owner);
    expect(md.ensure("h.test", "alice")).toBe(true);
    expect(md.ensure("h.test", "alice")).toBe(false);
    for (const sub of ["cur", "new", "tmp"])
      expect(statSync(join(paths.maildir("h.test", "alice"), sub)).mode & 0o777).toBe(0o700);
    expect(statSync(paths.mailHome("h.test", "alice")).mode & 0o777).toBe(0o700);
    expect(statSync(join(paths.domainDir("h.test"), "msg")).mode & 0o777).toBe(0o750);
  });

  it("refuses a symlink planted where a directory belongs", () => {
    const md = createMaildirs(paths, owner);
    md.ensureDomain("h.test");
    mkdirSync(join(root, "elsewhere"));
    symlinkSync(join(root, "elsewhere"), paths.mailHome("h.test", "mallory"));
    expect(() => md.ensure("h.test", "mallory")).toThrow(/refusing symlink/);
  });

  it("heals a whole state: existing homes completed, Sieve scripts active; skips what is no longer wanted", async () => {
    const md = createMaildirs(paths, owner);
    const list = [...items(50), { domain: "h.test", local: "sieved", sieve: "keep;\n" }];
    for (const m of list.slice(0, 50)) mkdirSync(join(paths.domainDir("h.test"), "msg", m.local), { recursive: true });
    const outcome = await md.heal(list, { wanted: (m) => m.local !== "u7" });
    expect(outcome).toEqual({ healed: 50, leftToDovecot: 0 });
    expect(existsSync(join(paths.maildir("h.test", "u49"), "tmp"))).toBe(true);
    expect(existsSync(paths.maildir("h.test", "u7"))).toBe(false);
    expect(readlinkSync(join(paths.mailHome("h.test", "sieved"), ".dovecot.sieve"))).toBe("sieve/netserva.sieve");
    expect(await md.heal(list)).toEqual({ healed: 1, leftToDovecot: 0 }); // only u7 was incomplete
  });

  it("leaves a home not made yet to Dovecot (adopted ones excepted), and a state applied again only looks", async () => {
    const md = createMaildirs(paths, owner);
    const adopted = {
      domain: "h.test",
      local: "adopted",
      sieve: "",
      own: { home: join(root, "home", "u2000", "var", "h.test", "msg", "adopted"), ...owner },
    };
    const list = [...items(200), adopted];
    let asked = 0;
    const wanted = (): boolean => (asked += 1) > 0;
    md.ensureDomain("h.test");
    const before = { ...maildirWork };
    expect(await md.heal(list, { wanted })).toEqual({ healed: 1, leftToDovecot: 200 });
    // One pass, each mailbox visited once; the domain's homes read once, so only the adopted
    // home is looked at, and only its five directories are made.
    expect(maildirWork.healPasses - before.healPasses).toBe(1);
    expect(maildirWork.mailboxesVisited - before.mailboxesVisited).toBe(201);
    expect(maildirWork.homeListings - before.homeListings).toBe(1);
    expect(maildirWork.homesLooked - before.homesLooked).toBe(1);
    expect(maildirWork.dirsMade - before.dirsMade).toBe(5);
    expect(asked).toBe(1);
    expect(existsSync(paths.mailHome("h.test", "u0"))).toBe(false);
    expect(existsSync(join(adopted.own.home, "Maildir", "new"))).toBe(true);

    // Dovecot made some homes since (first deliveries): complete ones need nothing, and no
    // mailbox is looked up in the DB (`wanted`) unless something is to be done for it.
    for (const m of items(20)) md.ensure(m.domain, m.local);
    const again = { ...maildirWork };
    asked = 0;
    expect(await md.heal(list, { wanted })).toEqual({ healed: 0, leftToDovecot: 180 });
    expect(maildirWork.homesLooked - again.homesLooked).toBe(21);
    expect(maildirWork.dirsMade - again.dirsMade).toBe(0);
    expect(asked).toBe(0);
  });

  it("completes a half-made maildir and sets a new mailbox's script in the same pass", async () => {
    const md = createMaildirs(paths, owner);
    md.ensure("h.test", "half");
    rmSync(join(paths.maildir("h.test", "half"), "new"), { recursive: true });
    rmSync(join(paths.maildir("h.test", "half"), "tmp"), { recursive: true });
    const list = [
      { domain: "h.test", local: "half", sieve: "" },
      { domain: "h.test", local: "fresh", sieve: "keep;\n" },
    ];
    expect(await md.heal(list)).toEqual({ healed: 2, leftToDovecot: 0 });
    for (const local of ["half", "fresh"])
      for (const sub of ["cur", "new", "tmp"])
        expect(statSync(join(paths.maildir("h.test", local), sub)).mode & 0o777).toBe(0o700);
    expect(readlinkSync(join(paths.mailHome("h.test", "fresh"), ".dovecot.sieve"))).toBe("sieve/netserva.sieve");
    expect(await md.heal(list)).toEqual({ healed: 0, leftToDovecot: 0 });
  });

  it("stops when its signal aborts", async () => {
    const md = createMaildirs(paths, owner);
    const controller = new AbortController();
    controller.abort();
    expect(await md.heal(items(20), { signal: controller.signal })).toEqual({ healed: 0, leftToDovecot: 0 });
    expect(existsSync(paths.mailHome("h.test", "u0"))).toBe(false);
  });

  it("yields to the event loop while it works, and paces itself to its duty cycle", async () => {
    const md = createMaildirs(paths, owner);
    // Homes Dovecot made without their folders (in the real case, half-made): work to do.
    for (const m of items(1000)) mkdirSync(join(paths.domainDir("h.test"), "msg", m.local), { recursive: true });
    let ticks = 0;
    const timer = setInterval(() => void ticks++, 1);
    const started = performance.now();
    const before = process.cpuUsage();
    await md.heal(items(1000), { dutyCycle: 0.5 });
    const cpu = process.cpuUsage(before);
    const wall = performance.now() - started;
    clearInterval(timer);
    expect(ticks).toBeGreaterThan(3);
    // Half duty: the wall time is at least ~1.5× the CPU time spent (allowing for the last slice).
    expect(wall).toBeGreaterThan(((cpu.user + cpu.system) / 1000) * 1.5);
  });
});
