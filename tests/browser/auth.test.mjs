// Authentication from a browser page, end to end: headless Chromium loads
// a page (served by this test, on its own origin) that connects with the
// JS SDK (sdk/js/dist/samsa.js) cross-origin to a real `samsa serve` with
// [auth] enabled and the page's origin in [websocket] allowed_origins.
//
// - a page fetches a short-lived bearer JWT from its backend (/token here,
//   which runs `samsa token issue --bearer`), produces and subscribes;
// - a page with a consume-only bearer gets forbidden on produce and still
//   reads;
// - a page without a token gets unauthorized;
// - nonce signing with WebCrypto Ed25519 in Chromium ({jwt, seed}).
//
// Uses Debian's /usr/bin/chromium (or $CHROMIUM) through playwright-core;
// never downloads a browser. Missing prerequisites skip, or fail under
// CI=true. Run: `node --test tests/browser/auth.test.mjs`.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, execFile } from "node:child_process";
import { promisify } from "node:util";
import { here, root, outDir, chromiumPath, freePort, httpGet, waitFor } from "./lib.mjs";
import { createServer } from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const execFileP = promisify(execFile);
const bundle = path.join(root, "sdk/js/dist/samsa.js");

function missing() {
  if (!fs.existsSync(chromiumPath)) return `no chromium at ${chromiumPath} (set CHROMIUM)`;
  if (!fs.existsSync(path.join(here, "node_modules/playwright-core/package.json"))) return "playwright-core is not installed (npm ci in tests/browser)";
  if (!process.env.SAMSA_BIN && spawnSync("go", ["version"], { stdio: "ignore" }).status !== 0) return "go is not on PATH (or set SAMSA_BIN)";
  if (!fs.existsSync(bundle)) return `${bundle} is missing: cd sdk/js && npm ci && npm run build`;
  return false;
}

const skip = missing();
if (skip && process.env.CI === "true") {
  test("browser auth test prerequisites", () => assert.fail(`${skip} (required under CI=true)`));
}

function log(...a) {
  console.log("[browser-auth]", ...a);
}

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>samsa auth test</title></head>
<body><p id="status">loading</p>
<script type="module">
import * as samsa from "/samsa.js";
window.samsa = samsa;
// Connects, subscribes from the start, produces n records, waits for n
// deliveries (or an error) and reports what happened, errors as data.
window.roundTrip = async (url, auth, topic, n, produce) => {
  const out = { got: [], acks: [], produceErrors: [] };
  let c;
  try {
    c = await samsa.connect(url, { auth, reconnect: false });
  } catch (e) {
    return { connectError: { name: e.name, code: e.code, message: e.message } };
  }
  out.identity = c.identity;
  out.helloAuth = c.hello.auth;
  const sub = c.subscribe(topic, { from: "earliest" }, (r) => { out.got.push({ offset: r.offset, value: r.value }); });
  try {
    await sub.ready;
  } catch (e) {
    out.subscribeError = { name: e.name, code: e.code, message: e.message };
  }
  if (produce) {
    const rs = await Promise.allSettled(Array.from({ length: n }, (_, i) => c.produce(topic, { key: "page", value: { i } })));
    for (const r of rs) {
      if (r.status === "fulfilled") out.acks.push(r.value);
      else out.produceErrors.push({ name: r.reason.name, code: r.reason.code, message: r.reason.message });
    }
  }
  const until = Date.now() + 15000;
  while (!out.subscribeError && out.got.length < n && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  out.state = c.state;
  await c.close();
  document.getElementById("status").textContent = "done";
  return out;
};
document.getElementById("status").textContent = "ready";
</script></body></html>`;

describe("browser: authentication with the JS SDK in headless Chromium", { skip }, () => {
  const cleanups = [];
  const children = new Set();
  let work;
  let bin;
  let issuer;
  const keys = {};
  let wsURL;
  let pageBase;
  let brokerBase; // the broker's HTTP listener, which serves the built-in dashboard
  let browser;
  let tokenCalls = 0;
  const consoleLines = [];

  const cli = async (...args) => (await execFileP(bin, args, { cwd: work, timeout: 60_000 })).stdout.trim();
  const issue = (user, ...flags) => cli("token", "issue", "--issuer-seed", issuer, "--user", keys[user].pub, ...flags);

  before(async () => {
    fs.mkdirSync(outDir, { recursive: true });
    work = fs.mkdtempSync(path.join(os.tmpdir(), "samsa-browser-auth-"));
    cleanups.push(() => fs.rmSync(work, { recursive: true, force: true }));
    bin = process.env.SAMSA_BIN;
    if (!bin) {
      bin = path.join(work, "samsa");
      log("go build ./cmd/samsa");
      await execFileP("go", ["build", "-o", bin, "./cmd/samsa"], { cwd: root, maxBuffer: 16 << 20 });
    }

    // The operator's setup, with the CLI.
    issuer = path.join(work, "issuer.nk");
    const init = await cli("auth", "init", "--out", issuer);
    const issuers = /^issuers = (\[.*\])$/m.exec(init)?.[1];
    assert.ok(issuers, init);
    for (const name of ["alice", "bob"]) {
      const seedFile = path.join(work, `${name}.nk`);
      const pub = await cli("key", "gen", "--out", seedFile);
      keys[name] = { seedFile, pub, seed: fs.readFileSync(seedFile, "utf8").trim() };
    }

    // The page's own server: the page, the SDK bundle, and /token, the
    // backend that hands the page a short-lived bearer JWT.
    const pagePort = await freePort();
    pageBase = `http://127.0.0.1:${pagePort}`;
    const server = createServer(async (req, res) => {
      const u = new URL(req.url, pageBase);
      if (u.pathname === "/") {
        res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" }).end(PAGE);
      } else if (u.pathname === "/samsa.js") {
        res.writeHead(200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-store" });
        fs.createReadStream(bundle).pipe(res);
      } else if (u.pathname === "/token") {
        tokenCalls++;
        try {
          const tok = await issue("alice", "--produce", "sensors.>", "--consume", "sensors.>", "--bearer", "--expires", "15m");
          res.writeHead(200, { "content-type": "text/plain", "cache-control": "no-store" }).end(tok);
        } catch (e) {
          res.writeHead(500).end(String(e));
        }
      } else res.writeHead(404).end("not found");
    });
    await new Promise((r) => server.listen(pagePort, "127.0.0.1", r));
    cleanups.push(() => new Promise((r) => server.close(() => r())));

    // The broker: auth on, the page's origin allowed (the page connects cross-origin).
    const kafkaAddr = `127.0.0.1:${await freePort()}`;
    const httpAddr = `127.0.0.1:${await freePort()}`;
    wsURL = `ws://${httpAddr}/ws`;
    brokerBase = `http://${httpAddr}`;
    const config = path.join(work, "broker.toml");
    fs.writeFileSync(
      config,
      `[auth]\nenabled = true\nissuers = ${issuers}\nfailed_auth_per_minute = 1000\n\n[websocket]\nallowed_origins = [${JSON.stringify(pageBase)}]\n`,
    );
    const logFile = fs.openSync(path.join(outDir, "samsa-auth.log"), "w");
    const broker = spawn(bin, ["serve", "--config", config, "--data-dir", path.join(work, "data"), "--kafka-addr", kafkaAddr, "--http-addr", httpAddr], {
      cwd: work,
      stdio: ["ignore", logFile, logFile],
    });
    fs.closeSync(logFile);
    children.add(broker);
    const exited = new Promise((r) => broker.on("exit", (code, signal) => (children.delete(broker), r({ code, signal }))));
    cleanups.push(async () => {
      if (broker.exitCode !== null || broker.signalCode !== null) return;
      broker.kill("SIGTERM");
      const t = setTimeout(() => broker.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(t);
    });
    const up = await Promise.race([waitFor("the broker's /healthz", async () => (await httpGet(`http://${httpAddr}/healthz`)).status === 200), exited]);
    assert.equal(up, true, `samsa serve exited: ${JSON.stringify(up)}\n${fs.readFileSync(path.join(outDir, "samsa-auth.log"), "utf8").slice(-3000)}`);

    const { chromium } = await import("playwright-core");
    browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--no-first-run"],
    });
    cleanups.push(() => browser.close());
    cleanups.push(() => fs.writeFileSync(path.join(outDir, "auth-page-console.log"), consoleLines.join("\n") + "\n"));
    log(`broker ${httpAddr}, page ${pageBase}`);
  });

  after(async () => {
    for (const f of cleanups.reverse()) {
      try {
        await f();
      } catch {}
    }
    for (const c of children) c.kill("SIGKILL");
  });

  async function newPage() {
    const page = await browser.newPage();
    page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
    await page.goto(`${pageBase}/`);
    await page.waitForFunction(() => typeof window.roundTrip === "function", null, { timeout: 15_000 });
    return page;
  }

  test("a page fetches a bearer JWT from its backend, produces and receives its records", { timeout: 60_000 }, async () => {
    const page = await newPage();
    const r = await page.evaluate(
      ({ url }) => window.roundTrip(url, async () => ({ bearer: await (await fetch("/token")).text() }), "sensors.page", 5, true),
      { url: wsURL },
    );
    await page.close();
    assert.equal(r.connectError, undefined, JSON.stringify(r.connectError));
    assert.equal(r.helloAuth, "required");
    assert.equal(r.identity.user, keys.alice.pub);
    assert.ok(r.identity.expires > Date.now() + 10 * 60_000, "a 15 min token");
    assert.deepEqual(r.produceErrors, []);
    assert.deepEqual(
      r.acks.map((a) => a.offset),
      [0, 1, 2, 3, 4],
    );
    assert.deepEqual(r.got, [0, 1, 2, 3, 4].map((i) => ({ offset: i, value: { i } })));
    assert.equal(r.state, "open");
    assert.ok(tokenCalls >= 1);
  });

  test("a page with a consume-only bearer gets forbidden on produce and still reads", { timeout: 60_000 }, async () => {
    const ro = await issue("bob", "--consume", "sensors.>", "--bearer", "--expires", "15m");
    const page = await newPage();
    const r = await page.evaluate(({ url, ro }) => window.roundTrip(url, { bearer: ro }, "sensors.page", 5, true), { url: wsURL, ro });
    await page.close();
    assert.equal(r.connectError, undefined, JSON.stringify(r.connectError));
    assert.equal(r.identity.user, keys.bob.pub);
    assert.equal(r.produceErrors.length, 5);
    for (const e of r.produceErrors) {
      assert.equal(e.name, "SamsaError");
      assert.equal(e.code, "forbidden");
    }
    assert.equal(r.got.length, 5, "reads what the first page produced");
    assert.equal(r.state, "open", "the connection stays usable");
  });

  test("a page without a token gets unauthorized", { timeout: 60_000 }, async () => {
    const page = await newPage();
    const r = await page.evaluate(({ url }) => window.roundTrip(url, undefined, "sensors.page", 0, false), { url: wsURL });
    const bad = await page.evaluate(({ url }) => window.roundTrip(url, { bearer: "not.a.jwt" }, "sensors.page", 0, false), { url: wsURL });
    await page.close();
    assert.deepEqual(r.connectError && [r.connectError.name, r.connectError.code], ["AuthError", "unauthorized"], JSON.stringify(r));
    assert.match(r.connectError.message, /requires authentication/);
    assert.deepEqual(bad.connectError && [bad.connectError.name, bad.connectError.code], ["AuthError", "unauthorized"], JSON.stringify(bad));
  });

  test("nonce signing with WebCrypto Ed25519 in Chromium ({jwt, seed})", { timeout: 60_000 }, async () => {
    const jwt = await issue("alice", "--produce", "sensors.>", "--consume", "sensors.>", "--expires", "1h");
    const page = await newPage();
    const pub = await page.evaluate((seed) => window.samsa.nkeyPublicKey(seed), keys.alice.seed);
    assert.equal(pub, keys.alice.pub, "the page derives the seed's public key as `samsa key pub` does");
    const r = await page.evaluate(({ url, jwt, seed }) => window.roundTrip(url, { jwt, seed }, "sensors.signed", 3, true), { url: wsURL, jwt, seed: keys.alice.seed });
    await page.close();
    assert.equal(r.connectError, undefined, JSON.stringify(r.connectError));
    assert.equal(r.identity.user, keys.alice.pub);
    assert.deepEqual(
      r.got.map((g) => g.value.i),
      [0, 1, 2],
    );
  });

  test("the built-in dashboard signs in with a bearer JWT from the URL fragment", { timeout: 60_000 }, async () => {
    const tok = await issue("alice", "--produce", "sensors.>", "--consume", "sensors.>", "--bearer", "--expires", "15m");
    const page = await browser.newPage();
    page.on("console", (m) => consoleLines.push(`dashboard ${m.type()}: ${m.text()}`));
    await page.goto(`${brokerBase}/?topic=sensors.dash&commands=sensors.dash&from=earliest#token=${tok}`);
    await page.waitForFunction(() => window.dashboard && window.dashboard.state === "open", null, { timeout: 20_000 });
    assert.equal(await page.evaluate(() => location.hash), "", "the token is taken out of the address bar");
    // A command from the form is acknowledged and comes back on the chart.
    await page.fill("#pump", "pump-1");
    await page.fill("#speed", "3");
    await page.click("#send");
    await page.waitForFunction(() => document.getElementById("ack").dataset.offset === "0", null, { timeout: 20_000 });
    await page.waitForFunction(() => window.dashboard.count >= 1, null, { timeout: 20_000 });
    // A reload in the same tab keeps the session's token.
    await page.reload();
    await page.waitForFunction(() => window.dashboard && window.dashboard.state === "open" && window.dashboard.count >= 1, null, { timeout: 20_000 });
    await page.close();
    // Without a token the same page is refused.
    const anon = await browser.newPage();
    await anon.goto(`${brokerBase}/?topic=sensors.dash`);
    await anon.waitForFunction(() => /unauthori[sz]ed|authentication/i.test(document.getElementById("error").textContent), null, { timeout: 20_000 });
    await anon.close();
  });
});
