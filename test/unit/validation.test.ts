// Hostile input for every parser in common/validation: each row must be refused with
// code "invalid_argument", the expected field, and a message that names the field.
import { describe, expect, it } from "vitest";
import { NetservaError } from "../../common/errors.ts";
import {
  checkPasswordInput,
  checkSieveScript,
  formatQuota,
  parseActiveFlag,
  parseAddress,
  parseAliasSource,
  parseAliasTargets,
  parseDisplayName,
  parseDkimSelector,
  parseDomain,
  parseHostPort,
  parseLocalPart,
  parseQuota,
  parseRequestId,
  parseVconfName,
  parseVnodeName,
} from "../../common/validation/index.ts";

const parsers = {
  domain: (s: string) => parseDomain(s),
  localPart: (s: string) => parseLocalPart(s),
  address: (s: string) => parseAddress(s),
  aliasSource: (s: string) => parseAliasSource(s),
  aliasTargets: (s: string) => parseAliasTargets(s),
  quota: (s: string) => parseQuota(s),
  vnode: (s: string) => parseVnodeName(s),
  selector: (s: string) => parseDkimSelector(s),
  vconf: (s: string) => parseVconfName(s),
  requestId: (s: string) => parseRequestId(s),
  hostPort: (s: string) => parseHostPort(s),
  displayName: (s: string) => parseDisplayName(s),
  active: (s: string) => parseActiveFlag(s),
  password: (s: string) => checkPasswordInput(s),
  sieve: (s: string) => checkSieveScript(s),
} as const;
type Parser = keyof typeof parsers;

const label64 = "a".repeat(64);
const hostile: Array<[Parser, string, string]> = [
  // domain: structure
  ["domain", "", "domain"],
  ["domain", " example.com", "domain"],
  ["domain", "example.com ", "domain"],
  ["domain", "example.com.", "domain"],
  ["domain", ".example.com", "domain"],
  ["domain", "a..b.com", "domain"],
  ["domain", "localhost", "domain"],
  ["domain", "-bad.com", "domain"],
  ["domain", "bad-.com", "domain"],
  ["domain", "ab--cd.com", "domain"],
  ["domain", "a_b.example.com", "domain"],
  ["domain", `${label64}.com`, "domain"],
  ["domain", `${Array(64).fill("abc").join(".")}.com`, "domain"],
  ["domain", "192.168.1.1", "domain"],
  ["domain", "[127.0.0.1]", "domain"],
  ["domain", "::1", "domain"],
  ["domain", "example.123", "domain"],
  ["domain", "a.0x7f", "domain"],
  ["domain", "xn--zz.com", "domain"],
  // domain: paths, shell, expansions, injection
  ["domain", "../etc", "domain"],
  ["domain", "..%2fetc.com", "domain"],
  ["domain", "a/b.com", "domain"],
  ["domain", "a\\b.com", "domain"],
  ["domain", "example.com;rm -rf /", "domain"],
  ["domain", "$(id).com", "domain"],
  ["domain", "`id`.com", "domain"],
  ["domain", "a|b.com", "domain"],
  ["domain", "a&&b.com", "domain"],
  ["domain", "a>b.com", "domain"],
  ["domain", "%d.com", "domain"],
  ["domain", "${home}.com", "domain"],
  ["domain", "exa'mple.com", "domain"],
  ["domain", 'exa"mple.com', "domain"],
  ["domain", "ex ample.com", "domain"],
  ["domain", "example.com\r\nX-Evil: 1", "domain"],
  ["domain", "exam\u0000ple.com", "domain"],
  ["domain", "exa\u0007mple.com", "domain"],
  // domain: Unicode tricks
  ["domain", "раураl.com", "domain"], // Cyrillic а/р/у mixed with Latin l
  ["domain", "xn--l-7sba6dbr.com", "domain"], // the same, typed as an A-label
  ["domain", "аррӏе.com", "domain"], // all-Cyrillic lookalike of "apple"
  ["domain", "gοοgle.com", "domain"], // Greek omicrons in a Latin label
  ["domain", "ｅｘａｍｐｌｅ.com", "domain"], // fullwidth
  ["domain", "exa\u200bmple.com", "domain"], // zero-width space
  ["domain", "exa\u200dmple.com", "domain"], // zero-width joiner
  ["domain", "exa\u202emple.com", "domain"], // RTL override
  ["domain", "\u212aelvin.com", "domain"], // Kelvin sign stands in for 'k'
  ["domain", "a\u3002com", "domain"], // ideographic full stop
  ["domain", "☃.com", "domain"],
  ["domain", "xn--ls8h.la", "domain"], // emoji behind an A-label
  // local part
  ["localPart", "", "local_part"],
  ["localPart", "a".repeat(65), "local_part"],
  ["localPart", "../etc", "local_part"],
  ["localPart", "a/b", "local_part"],
  ["localPart", "..", "local_part"],
  ["localPart", ".abc", "local_part"],
  ["localPart", "abc.", "local_part"],
  ["localPart", "a..b", "local_part"],
  ["localPart", "%u", "local_part"],
  ["localPart", "%{user}", "local_part"],
  ["localPart", "${home}", "local_part"],
  ["localPart", "user%host", "local_part"],
  ["localPart", ";rm -rf /", "local_part"],
  ["localPart", "$(id)", "local_part"],
  ["localPart", "`id`", "local_part"],
  ["localPart", "a|b", "local_part"],
  ["localPart", "a&&b", "local_part"],
  ["localPart", "a>b", "local_part"],
  ["localPart", "a*", "local_part"],
  ["localPart", "a?", "local_part"],
  ["localPart", "o'brien", "local_part"],
  ["localPart", '"quoted"', "local_part"],
  ["localPart", "a b", "local_part"],
  ["localPart", "a\u0000b", "local_part"],
  ["localPart", "a\r\nRCPT TO:<x>", "local_part"],
  ["localPart", "-oQ/tmp", "local_part"],
  ["localPart", "-f", "local_part"], // would read as an option on a command line
  ["localPart", "+tag", "local_part"],
  ["localPart", "a!b", "local_part"], // bang path
  ["localPart", "a#b", "local_part"], // comment in map files
  ["localPart", "user@host", "local_part"],
  ["localPart", "jürgen", "local_part"],
  ["localPart", "ｊohn", "local_part"],
  ["localPart", "jo\u200bhn", "local_part"],
  // address
  ["address", "", "address"],
  ["address", "user", "address"],
  ["address", "user@", "address"],
  ["address", "@example.com", "address"],
  ["address", "a@b@example.com", "address"],
  ["address", `${"a".repeat(64)}@${Array(4).fill("b".repeat(60)).join(".")}.com`, "address"],
  ["address", "a\r\nRCPT TO:<x>@example.com", "address"],
  ["address", "Jane <jane@example.com>", "address"],
  ["address", "user@[127.0.0.1]", "address"],
  ["address", "user@раураl.com", "address"],
  ["address", "user@example.com\u0000", "address"],
  ["address", "%d@example.com", "address"],
  // alias source (catch-all misuse)
  ["aliasSource", "@", "source"],
  ["aliasSource", "*@example.com", "source"],
  ["aliasSource", "local@", "source"],
  ["aliasSource", "@@example.com", "source"],
  ["aliasSource", "@*.example.com", "source"],
  ["aliasSource", "*", "source"],
  // alias targets
  ["aliasTargets", "", "targets"],
  ["aliasTargets", "a@x.com,,b@y.com", "targets"],
  ["aliasTargets", "a@x.com,", "targets"],
  ["aliasTargets", "a@x.com, A@X.com", "targets"],
  ["aliasTargets", Array.from({ length: 51 }, (_, i) => `u${i}@x.com`).join(","), "targets"],
  ["aliasTargets", "a@x.com,|/bin/sh", "targets"],
  ["aliasTargets", "a@x.com,/var/mail/root", "targets"],
  ["aliasTargets", "a@x.com\nb@y.com", "targets"],
  ["aliasTargets", "@example.com", "targets"],
  // quota
  ["quota", "", "quota"],
  ["quota", "-1", "quota"],
  ["quota", "-1G", "quota"],
  ["quota", "NaN", "quota"],
  ["quota", "Infinity", "quota"],
  ["quota", "1e9", "quota"],
  ["quota", "0x10", "quota"],
  ["quota", "1 G", "quota"],
  ["quota", " 1G", "quota"],
  ["quota", "G", "quota"],
  ["quota", "1.5", "quota"],
  ["quota", "1.2345G", "quota"],
  ["quota", "1025T", "quota"],
  ["quota", "99999999999999999999", "quota"],
  ["quota", "1P", "quota"],
  ["quota", "1G;rm -rf /", "quota"],
  // names
  ["vnode", "", "vnode"],
  ["vnode", "../etc", "vnode"],
  ["vnode", "mail.1", "vnode"],
  ["vnode", "mail_1", "vnode"],
  ["vnode", "-mail", "vnode"],
  ["vnode", label64, "vnode"],
  ["vnode", "mail\u0000", "vnode"],
  ["selector", "mail/../../key", "selector"],
  ["selector", "s1._domainkey", "selector"],
  ["selector", "s%d", "selector"],
  ["vconf", "MPWD;id", "name"],
  ["vconf", "1MPWD", "name"],
  ["vconf", "M", "name"],
  ["vconf", "MPWD$(id)", "name"],
  ["requestId", "", "request_id"],
  ["requestId", "r".repeat(65), "request_id"],
  ["requestId", "abc\r\nforged log line", "request_id"],
  ["requestId", "a/b", "request_id"],
  ["hostPort", "example.com", "endpoint"],
  ["hostPort", "example.com:0", "endpoint"],
  ["hostPort", "example.com:65536", "endpoint"],
  ["hostPort", "example.com:08", "endpoint"],
  ["hostPort", "2001:db8::1:443", "endpoint"],
  ["hostPort", "[fe80::1%eth0]:443", "endpoint"],
  ["hostPort", "[not-ipv6]:443", "endpoint"],
  ["hostPort", "999.1.1.1:80", "endpoint"],
  ["hostPort", "a_b.example.com:80", "endpoint"],
  ["hostPort", "$(id):80", "endpoint"],
  ["displayName", 'Jane "Boss" Doe', "display_name"],
  ["displayName", "Jane <jane@evil.example>", "display_name"],
  ["displayName", "Jane\r\nBcc: victim@example.com", "display_name"],
  ["displayName", "Jane\u0000", "display_name"],
  ["displayName", "Jane \u202eeoD", "display_name"],
  ["displayName", "x".repeat(129), "display_name"],
  ["active", "yes", "active"],
  ["active", "2", "active"],
  ["active", "", "active"],
  ["password", "short", "password"],
  ["password", "secret123\n", "password"],
  ["password", "secret\u0000123", "password"],
  ["password", "p".repeat(1025), "password"],
  ["sieve", "", "sieve"],
  ["sieve", "# only a comment\n", "sieve"],
  ["sieve", "/* never closed", "sieve"],
  ["sieve", "keep;\u0000", "sieve"],
  ["sieve", "<?php system($_GET['x']);", "sieve"],
  ["sieve", '\uFEFFrequire "fileinto";', "sieve"],
  ["sieve", `keep;\n#${"x".repeat(64 * 1024)}`, "sieve"],
];

function refusal(run: () => unknown): NetservaError {
  try {
    run();
  } catch (err) {
    if (err instanceof NetservaError) return err;
    throw err;
  }
  throw new Error("input was accepted");
}

describe("validation refuses hostile input", () => {
  it("has at least 80 hostile rows", () => expect(hostile.length).toBeGreaterThanOrEqual(80));

  it.each(
    hostile.map(([parser, input, field]) => ({ parser, input, field, shown: JSON.stringify(input).slice(0, 60) })),
  )("$parser $shown → $field", ({ parser, input, field }) => {
    const err = refusal(() => parsers[parser](input));
    expect(err.code).toBe("invalid_argument");
    expect(err.field).toBe(field);
    expect(err.message).toContain(field);
    expect(err.message).not.toMatch(/[\p{Cc}\u202e]/u); // hostile bytes are escaped in messages
  });

  it("names the caller's field", () => {
    expect(refusal(() => parseDomain("a_b.com", "mail_domain")).field).toBe("mail_domain");
    expect(refusal(() => parseAddress("x@a..b", "owner")).message).toMatch(/^owner: /);
    expect(refusal(() => parseQuota(-5, "mquota")).field).toBe("mquota");
  });

  it("says what is allowed", () => {
    expect(refusal(() => parseDomain("a_b.com")).message).toBe(
      "domain: domain label 'a_b' contains '_'; use letters, digits and hyphens",
    );
    expect(refusal(() => parseLocalPart("a%b")).message).toContain("use letters, digits and . _ + = -");
    expect(refusal(() => parseLocalPart("jürgen")).message).toContain("SMTPUTF8");
    expect(refusal(() => parseAliasSource("*@example.com")).message).toContain("'@example.com'");
  });

  it("never echoes a password", () => {
    expect(refusal(() => checkPasswordInput("hunter2\n")).message).not.toContain("hunter2");
  });

  it("refuses non-string input arriving from JSON", () => {
    expect(refusal(() => parseDomain(42 as unknown as string)).field).toBe("domain");
    expect(refusal(() => parseAliasTargets([] as string[])).field).toBe("targets");
    expect(refusal(() => parseQuota(Number.NaN)).field).toBe("quota");
    expect(refusal(() => parseQuota(1.5)).field).toBe("quota");
    expect(refusal(() => checkSieveScript(new Uint8Array([0x6b, 0xff, 0xfe]))).field).toBe("sieve");
  });
});

describe("validation accepts and normalises good input", () => {
  it("converts IDNA both ways", () => {
    expect(parseDomain("bücher.example")).toEqual({ ascii: "xn--bcher-kva.example", unicode: "bücher.example" });
    expect(parseDomain("xn--bcher-kva.example")).toEqual({ ascii: "xn--bcher-kva.example", unicode: "bücher.example" });
    expect(parseDomain("BÜCHER.Example").ascii).toBe("xn--bcher-kva.example");
    expect(parseDomain("Mail.Example.COM")).toEqual({ ascii: "mail.example.com", unicode: "mail.example.com" });
    expect(parseDomain("日本語テキスト.jp").unicode).toBe("日本語テキスト.jp");
    expect(parseDomain("пример.рф").ascii).toBe("xn--e1afmkfd.xn--p1ai");
    expect(parseDomain("аррӏе.рф").ascii).toBe("xn--80ak6aa92e.xn--p1ai"); // Cyrillic under a Cyrillic TLD
  });

  it("accepts names exactly at the length limits and refuses one more", () => {
    const l63 = "b".repeat(63);
    const domain253 = `${l63}.${l63}.${l63}.${"c".repeat(61)}`;
    expect(parseDomain(domain253).ascii).toHaveLength(253);
    expect(refusal(() => parseDomain(`${domain253}c`)).message).toContain("limit is 253");
    expect(parseLocalPart("a".repeat(64))).toHaveLength(64);
    const address254 = `${"a".repeat(64)}@${l63}.${l63}.${"c".repeat(61)}`;
    expect(parseAddress(address254).ascii).toHaveLength(254);
    expect(refusal(() => parseAddress(`${address254}c`)).message).toContain("limit is 254");
    expect(parseVnodeName(l63)).toBe(l63);
    expect(parseRequestId("r".repeat(64))).toHaveLength(64);
    expect(checkPasswordInput("p".repeat(1024))).toHaveLength(1024);
    expect(parseDisplayName("x".repeat(128))).toHaveLength(128);
  });

  it("parses addresses, alias sources and targets", () => {
    expect(parseAddress("John.Doe+tag@Bücher.Example")).toEqual({
      local: "john.doe+tag",
      domain: { ascii: "xn--bcher-kva.example", unicode: "bücher.example" },
      address: "john.doe+tag@bücher.example",
      ascii: "john.doe+tag@xn--bcher-kva.example",
    });
    expect(parseLocalPart("SRS0=ab12=XY=example.org=user")).toBe("srs0=ab12=xy=example.org=user");
    expect(parseAliasSource("@Example.com")).toMatchObject({ kind: "catchall", source: "@example.com" });
    expect(parseAliasSource("info@example.com")).toMatchObject({
      kind: "address",
      local: "info",
      source: "info@example.com",
    });
    expect(parseAliasTargets("a@x.com , b@y.org,\tc@z.net").map((t) => t.ascii)).toEqual([
      "a@x.com",
      "b@y.org",
      "c@z.net",
    ]);
    expect(parseAliasTargets(["a@x.com", "b@y.org, c@z.net"])).toHaveLength(3);
    expect(parseAliasTargets(Array.from({ length: 50 }, (_, i) => `u${i}@x.com`))).toHaveLength(50);
  });

  it("parses and formats quotas", () => {
    expect(parseQuota("2G")).toBe(2 * 1024 ** 3);
    expect(parseQuota("500M")).toBe(500 * 1024 ** 2);
    expect(parseQuota("1.5G")).toBe(1.5 * 1024 ** 3);
    expect(parseQuota("0")).toBe(0);
    expect(parseQuota("1gib")).toBe(1024 ** 3);
    expect(parseQuota("1GB")).toBe(1024 ** 3);
    expect(parseQuota("100b")).toBe(100);
    expect(parseQuota("1024T")).toBe(2 ** 50);
    expect(parseQuota(1048576)).toBe(1048576);
    for (const q of ["2G", "512M", "1.5G", "0", "1000000", "1.25K", "1024T"])
      expect(formatQuota(parseQuota(q))).toBe(q);
    expect(formatQuota(1536 * 1024 ** 2)).toBe("1.5G");
  });

  it("parses the short names", () => {
    expect(parseVnodeName("Mail1")).toBe("mail1");
    expect(parseDkimSelector("s2024-01")).toBe("s2024-01");
    expect(parseVconfName("MQUOTA")).toBe("MQUOTA");
    expect(parseVconfName("dpass")).toBe("DPASS");
    expect(parseRequestId("cli:2024-01-01T00.abc_1")).toBe("cli:2024-01-01T00.abc_1");
    expect(parseHostPort("Mail.Example.com:4000")).toEqual({ host: "mail.example.com", port: 4000, kind: "name" });
    expect(parseHostPort("localhost:5432")).toEqual({ host: "localhost", port: 5432, kind: "name" });
    expect(parseHostPort("192.0.2.1:25")).toEqual({ host: "192.0.2.1", port: 25, kind: "ipv4" });
    expect(parseHostPort("[2001:DB8::1]:65535")).toEqual({ host: "2001:db8::1", port: 65535, kind: "ipv6" });
    expect(parseDisplayName("Zoë O'Brien (Sales)")).toBe("Zoë O'Brien (Sales)");
    expect(parseDisplayName("")).toBe("");
    expect([parseActiveFlag("1"), parseActiveFlag("true"), parseActiveFlag("0"), parseActiveFlag("false")]).toEqual([
      true,
      true,
      false,
      false,
    ]);
  });

  it("accepts passwords and sieve scripts", () => {
    expect(checkPasswordInput("correct horse battery staple")).toBe("correct horse battery staple");
    expect(
      checkSieveScript(
        '# filter\n/* spam */\nrequire ["fileinto"];\nif header :contains "X-Spam" "yes" { fileinto "Junk"; }\n',
      ),
    ).toContain("require");
    expect(checkSieveScript("keep;")).toBe("keep;");
    expect(checkSieveScript(new TextEncoder().encode("# ü\nkeep;\n"))).toBe("# ü\nkeep;\n");
  });
});
