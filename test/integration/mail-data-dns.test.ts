// The zone-list DNS provider the CLI uses until PowerDNS: longest matching zone, file format.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createZoneListProvider } from "../../controller/dns/zone-list-provider.ts";
import { NetservaError } from "../../common/errors.ts";

const dir = mkdtempSync(join(tmpdir(), "nsm-zones-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("zone list provider", () => {
  it("answers with the longest zone that covers the domain", async () => {
    const dns = createZoneListProvider({ zones: ["example.com", "sub.example.com", "Bücher.example", "test."] });
    expect(await dns.findZone("example.com")).toBe("example.com");
    expect(await dns.findZone("mail.example.com")).toBe("example.com");
    expect(await dns.findZone("a.sub.example.com")).toBe("sub.example.com");
    expect(await dns.findZone("xn--bcher-kva.example")).toBe("xn--bcher-kva.example");
    expect(await dns.findZone("anything.test")).toBe("test");
    expect(await dns.findZone("notexample.com")).toBeUndefined();
    expect(await dns.findZone("example.org")).toBeUndefined();
  });

  it("reads one zone per line with # comments, and refuses a bad line naming it", async () => {
    const file = join(dir, "zones");
    writeFileSync(file, "# hosted zones\nexample.net   # main\n\n  Example.ORG.\r\n");
    const dns = createZoneListProvider({ file });
    expect(await dns.findZone("mx.example.net")).toBe("example.net");
    expect(await dns.findZone("example.org")).toBe("example.org");
    const bad = join(dir, "bad");
    writeFileSync(bad, "example.net\nexa$mple.com\n");
    await expect(createZoneListProvider({ file: bad }).findZone("example.net")).rejects.toThrow(/bad line 2/);
    const missing = createZoneListProvider({ file: join(dir, "missing") });
    await expect(missing.findZone("example.net")).rejects.toSatisfy(
      (e: unknown) => e instanceof NetservaError && e.code === "unavailable",
    );
    expect(() => createZoneListProvider({ zones: ["../etc"] })).toThrow(/zones\[0\]/);
  });
});
