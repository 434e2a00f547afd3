// Helpers shared by the browser tests of this folder.
import { request as httpRequest } from "node:http";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository's root. */
export const root = path.resolve(here, "../..");
/** Where tests leave screenshots and logs. */
export const outDir = path.join(here, "out");
/** Debian's Chromium, or $CHROMIUM. */
export const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";

/** A 127.0.0.1 port that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** GET url: {status, body, type}; status 0 when it cannot connect. */
export function httpGet(url, timeoutMs = 2000) {
  return new Promise((resolve) => {
    const req = httpRequest(url, { timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode, body, type: res.headers["content-type"] || "" }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => resolve({ status: 0, body: "" }));
    req.end();
  });
}

/** Polls fn every `every` ms until it returns a truthy value, which it returns. */
export async function waitFor(what, fn, ms = 30_000, every = 100) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}
