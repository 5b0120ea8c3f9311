// Mail storage in NetServa's layout: /srv/<domain>/msg/<user>/Maildir, home and Maildir 0700
// owned by the vmail user. Created when a mailbox is added (so the first delivery never races a
// mkdir), removed with the mailbox unless the operator keeps it. Also the per-user Sieve script
// that comes in the mailbox row, activated the way ManageSieve would (~/.dovecot.sieve link).
// An adopted mailbox (its row carries its own home, uid and gid: NetServa's per-domain owners,
// homes under /home) is used where it is: what exists is never moved or chowned, what is
// missing is made with its own owner, and no /srv/<domain> directory is made for it.
//
// A whole state's heal makes nothing for a mailbox that has no home yet (unless it has a Sieve
// script, or is adopted: its parents are root's): Dovecot makes home and Maildir, 0700 and the
// vmail user's, at the first delivery or login (mail-vnode.test.ts). After a 100,000-mailbox
// import that was half a million mkdir calls, the agent's main background cost (issue 14).
import {
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  opendirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  renameSync,
} from "node:fs";
import type { Dir, Stats } from "node:fs";
import { dirname, join } from "node:path";
import type { VnodePaths } from "../paths.ts";
import type { SystemUser } from "./vmail-user.ts";
import { isCurrent, writeFileAtomic } from "../apply/atomic-write.ts";

const SCRIPT = "netserva";
const FOLDERS = ["Maildir", "Maildir/cur", "Maildir/new", "Maildir/tmp"];

/** An adopted mailbox's own home and owner (absent: derived from the domain and the vmail user). */
export interface MailboxOwn {
  readonly home: string;
  readonly uid: number;
  readonly gid: number;
}

export interface Maildirs {
  /** Create home, Maildir{cur,new,tmp} if missing; returns true when something was created. */
  ensure(domain: string, local: string, own?: MailboxOwn): boolean;
  /** The domain's directories (root-owned, so Dovecot cannot create them itself). */
  ensureDomain(domain: string): boolean;
  /**
   * `ensure` and `setSieve` for a whole state's existing homes, in paced slices; a mailbox
   * without a home is left to Dovecot (see above). Only a mailbox that needs something is
   * checked with `wanted` (one deleted meanwhile is skipped), so a state applied again costs a
   * few lstat calls per mailbox. Stops early when `signal` aborts.
   */
  heal(mailboxes: Iterable<HealItem>, options?: HealOptions): Promise<HealOutcome>;
  remove(domain: string, local: string, own?: MailboxOwn): boolean;
  /** Install (or with "" remove) the mailbox's own Sieve script; returns true on change. */
  setSieve(domain: string, local: string, script: string, own?: MailboxOwn): boolean;
}

export interface HealItem {
  domain: string;
  local: string;
  sieve: string;
  own?: MailboxOwn | undefined;
}

export interface HealOutcome {
  /** Mailboxes that needed something (a folder made, a Sieve script set or removed). */
  healed: number;
  /** Mailboxes without a home, left for Dovecot to make at their first delivery or login. */
  leftToDovecot: number;
}

/** What the maildir code has done in this process; tests count work with it (never time).
 *  homeListings: msg directories read by a heal; homesLooked: homes it lstat'ed. */
export const maildirWork = { healPasses: 0, mailboxesVisited: 0, homeListings: 0, homesLooked: 0, dirsMade: 0 };

export interface HealOptions {
  wanted?: (item: HealItem) => boolean;
  signal?: AbortSignal;
  /** Share of one core while healing (default 1: only yield between slices). */
  dutyCycle?: number;
}

/** Work between pauses while healing, ms. */
const SLICE_MS = 10;

export function createMaildirs(paths: VnodePaths, owner: SystemUser): Maildirs {
  const dir = (path: string, mode: number, uid: number, gid: number): boolean => {
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (st) {
      // Never follow a link planted inside a user-writable tree.
      if (st.isSymbolicLink()) throw new Error(`refusing symlink at ${path}`);
      return false;
    }
    mkdirSync(path, { mode });
    maildirWork.dirsMade += 1;
    chownSync(path, uid, gid);
    return true;
  };
  const ownerOf = (o?: MailboxOwn): { uid: number; gid: number } => o ?? owner;
  const own = (path: string, mode: number, o?: MailboxOwn): boolean => {
    const who = ownerOf(o);
    return dir(path, mode, who.uid, who.gid);
  };
  const homeOf = (domain: string, local: string, o?: MailboxOwn): string => o?.home ?? paths.mailHome(domain, local);
  const ensureDomain = (domain: string): boolean => {
    mkdirSync(paths.mailRoot, { recursive: true, mode: 0o755 });
    const made = dir(paths.domainDir(domain), 0o755, 0, 0);
    return own(join(paths.domainDir(domain), "msg"), 0o750) || made;
  };
  /** Inside a home just made: nothing is there yet, so no lstat first (unless Dovecot, as the
   *  owner, got there in between: then the checked way, which refuses a symlink). */
  const fresh = (path: string, o?: MailboxOwn): void => {
    try {
      mkdirSync(path, { mode: 0o700 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      own(path, 0o700, o);
      return;
    }
    maildirWork.dirsMade += 1;
    const who = ownerOf(o);
    chownSync(path, who.uid, who.gid);
  };
  /** "made" when the home itself was missing (so was everything in it), true, or false. */
  const ensureMailbox = (domain: string, local: string, o?: MailboxOwn): "made" | boolean => {
    const home = homeOf(domain, local, o);
    // An adopted home's parents are NetServa's (/home/u2000/var/<domain>/msg): made if missing,
    // root-owned and traversable like ours, never changed when they exist.
    if (o) mkdirSync(dirname(home), { recursive: true, mode: 0o755 });
    const maildir = join(home, "Maildir");
    if (own(home, 0o700, o)) {
      // A new mailbox (a first state of 100,000 is half a million of these): 4 lstats fewer each.
      fresh(maildir, o);
      for (const sub of ["cur", "new", "tmp"]) fresh(join(maildir, sub), o);
      return "made";
    }
    let made = own(maildir, 0o700, o);
    for (const sub of ["cur", "new", "tmp"]) made = own(join(maildir, sub), 0o700, o) || made;
    return made;
  };
  const setSieve = (domain: string, local: string, script: string, o?: MailboxOwn): boolean => {
    const home = homeOf(domain, local, o);
    const file = join(home, "sieve", `${SCRIPT}.sieve`);
    const active = join(home, ".dovecot.sieve");
    const target = `sieve/${SCRIPT}.sieve`;
    if (script === "") {
      if (!existsSync(file)) return false;
      if (linkTarget(active) === target) rmSync(active, { force: true });
      rmSync(file, { force: true });
      return true;
    }
    own(join(home, "sieve"), 0o700, o);
    const spec = { content: script, mode: 0o600, ...ownerOf(o) };
    const changed = !isCurrent(file, spec);
    if (changed) writeFileAtomic(file, spec);
    if (linkTarget(active) !== target) {
      // Atomic switch of the active script, as ManageSieve's SETACTIVE does.
      const tmp = `${active}.ns-tmp`;
      rmSync(tmp, { force: true });
      symlinkSync(target, tmp);
      renameSync(tmp, active);
      return true;
    }
    return changed;
  };

  /** Nothing to do for an existing home: a real directory with its Maildir folders, and no
   *  script to remove (a wanted script is always checked by setSieve: its content may differ). */
  const settled = (home: string, st: Stats, sieve: string): boolean =>
    st.isDirectory() &&
    sieve === "" &&
    FOLDERS.every((f) => lstatSync(join(home, f), { throwIfNoEntry: false })?.isDirectory() === true) &&
    !existsSync(join(home, "sieve", `${SCRIPT}.sieve`));

  return {
    ensure(domain, local, o) {
      const made = o ? false : ensureDomain(domain);
      return ensureMailbox(domain, local, o) !== false || made;
    },
    ensureDomain,
    async heal(mailboxes, options = {}) {
      const duty = Math.min(1, Math.max(0.01, options.dutyCycle ?? 1));
      const domains = new Set<string>();
      const outcome: HealOutcome = { healed: 0, leftToDovecot: 0 };
      maildirWork.healPasses += 1;
      let sliceStart = performance.now();
      const pause = async (): Promise<void> => {
        const worked = performance.now() - sliceStart;
        await new Promise((resolve) =>
          duty >= 1 ? setImmediate(resolve) : setTimeout(resolve, worked * (1 / duty - 1)),
        );
        sliceStart = performance.now();
      };
      const due = (): boolean => performance.now() - sliceStart >= SLICE_MS;
      // The homes a domain has, read once per pass (entry by entry, paced): a mailbox whose
      // home is not there costs no lstat (after a 100,000-mailbox import: none of them).
      const homes = new Map<string, Set<string>>();
      const homesIn = async (domain: string): Promise<Set<string>> => {
        const names = new Set<string>();
        homes.set(domain, names);
        let dir: Dir;
        try {
          dir = opendirSync(join(paths.domainDir(domain), "msg"), { bufferSize: 256 });
        } catch {
          return names; // no msg directory yet: no homes
        }
        maildirWork.homeListings += 1;
        try {
          for (let e = dir.readSync(); e !== null; e = dir.readSync()) {
            names.add(e.name);
            if (due()) await pause();
          }
        } finally {
          dir.closeSync();
        }
        return names;
      };
      for (const m of mailboxes) {
        if (options.signal?.aborted) break;
        maildirWork.mailboxesVisited += 1;
        const listed = m.own ? undefined : (homes.get(m.domain) ?? (await homesIn(m.domain)));
        const looked = !listed || listed.has(m.local);
        const home = looked || m.sieve !== "" ? homeOf(m.domain, m.local, m.own) : "";
        let st: Stats | undefined;
        if (looked) {
          maildirWork.homesLooked += 1;
          st = lstatSync(home, { throwIfNoEntry: false });
        }
        if (!st && !m.own && m.sieve === "") outcome.leftToDovecot += 1;
        else if (!(st && settled(home, st, m.sieve)) && (!options.wanted || options.wanted(m))) {
          if (!m.own && !domains.has(m.domain)) {
            ensureDomain(m.domain);
            domains.add(m.domain);
          }
          const made = ensureMailbox(m.domain, m.local, m.own);
          // A home made just now has no script to remove.
          const sieveChanged = made === "made" && m.sieve === "" ? false : setSieve(m.domain, m.local, m.sieve, m.own);
          if (sieveChanged || made !== false) outcome.healed += 1;
        }
        if (due()) await pause();
      }
      return outcome;
    },
    setSieve,
    remove(domain, local, o) {
      const home = homeOf(domain, local, o);
      if (!existsSync(home)) return false;
      rmSync(home, { recursive: true, force: true });
      return true;
    },
  };
}

function linkTarget(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}
