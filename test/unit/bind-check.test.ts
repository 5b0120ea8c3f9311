// The bind check before a listener change: only addresses the change adds are tried, every mail
// port on each; a taken one refuses the change naming the address, port and daemon; with `all` on
// either side nothing is tried (the daemons' own sockets would look taken). tryBind against a
// real socket held on loopback.
import { createServer, type Server } from "node:net";
import { describe, expect, it } from "vitest";
import { checkNewListeners, postfixListenAddresses, tryBind } from "../../agent/mail/bind-check.ts";

describe("bind check before a listener change", () => {
  it("tries every mail port on each added address only, and refuses naming what is taken", async () => {
    const tried: string[] = [];
    const bind = async (host: string, port: number) => {
      tried.push(`${host}:${port}`);
      return host === "127.0.0.1" && port === 25 ? "Address already in use" : undefined;
    };
    await expect(checkNewListeners(["10.0.0.2"], ["10.0.0.2", "127.0.0.1"], bind)).rejects.toThrow(
      "config refused at bind check; previous config kept, no daemon restarted: bind 127.0.0.1 port 25 (postfix smtp): Address already in use",
    );
    expect(tried).toEqual([25, 587, 465, 143, 993, 110, 995, 4190].map((p) => `127.0.0.1:${p}`));
    await expect(checkNewListeners(["10.0.0.2"], ["10.0.0.2", "10.0.0.3"], bind)).resolves.toBeUndefined();
  });

  it("tries nothing when either side listens on all addresses", async () => {
    const tried: string[] = [];
    const bind = async (host: string) => void tried.push(host);
    await checkNewListeners(undefined, ["127.0.0.1"], bind);
    await checkNewListeners(["10.0.0.2"], [], bind);
    expect(tried).toEqual([]);
    expect(postfixListenAddresses("inet_interfaces = all\n")).toBeUndefined();
    expect(postfixListenAddresses("inet_interfaces = loopback-only\n")).toBeUndefined();
    expect(postfixListenAddresses("x = 1\ninet_interfaces = 10.0.0.2, 127.0.0.1\n")).toEqual(["10.0.0.2", "127.0.0.1"]);
  });

  it("tryBind says a port another socket holds is in use, and leaves a free one free", async () => {
    const held: Server = createServer();
    await new Promise<void>((r) => held.listen({ host: "127.0.0.1", port: 0 }, r));
    const port = (held.address() as { port: number }).port;
    try {
      expect(await tryBind("127.0.0.1", port)).toBe("Address already in use");
    } finally {
      await new Promise((r) => held.close(r));
    }
    expect(await tryBind("127.0.0.1", port)).toBeUndefined();
    expect(await tryBind("127.0.0.1", port)).toBeUndefined();
  });
});
