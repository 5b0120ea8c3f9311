// Verification after a reload: the daemons must greet on the ports clients use, not just have a pid.
import { connect } from "node:net";

/** Connect to host:port and require the greeting to start with `banner` within the deadline. */
export function greets(host: string, port: number, banner: string, timeoutMs = 3_000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    let buf = "";
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.on("error", () => done(false));
    s.on("data", (d) => {
      buf += d.toString("latin1");
      if (buf.includes("\n")) done(buf.startsWith(banner));
    });
  });
}
