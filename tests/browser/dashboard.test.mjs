// End-to-end test of examples/browser-dashboard in headless Chromium:
// a real `samsa serve` serving the page itself (the built-in console at /,
// with the JS SDK's bundle at /samsa.js, both embedded in the binary),
// examples/sensor-sim producing readings, the page charting them through
// the SDK, a command sent from the page's form (checked with `samsa
// consume`), and a broker restart in the middle of the stream (the page
// stays loaded, its SDK reconnects, and the chart must go on with no
// duplicate and no missing offset).
//
// Uses Debian's /usr/bin/chromium (or $CHROMIUM) through playwright-core;
// never downloads a browser. Run: `node --test tests/browser/` (or go test
// ./tests/browser/). Artifacts (screenshots, logs) go to tests/browser/out/.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFile } from "node:child_process";
import { promisify } from "node:util";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { here, root, outDir, chromiumPath, freePort, httpGet, waitFor } from "./lib.mjs";

const execFileP = promisify(execFile);

fs.mkdirSync(outDir, { recursive: true });
const work = fs.mkdtempSync(path.join(os.tmpdir(), "samsa-browser-"));

// Everything started here is stopped at the end, whatever happens.
const children = new Set();
const cleanups = [];
after(async () => {
  for (const f of cleanups.reverse()) {
    try {
      await f();
    } catch {}
  }
  for (const c of children) stopChild(c, "SIGKILL");
  if (!process.env.KEEP_TMP) fs.rmSync(work, { recursive: true, force: true });
});
process.on("exit", () => {
  for (const c of children) {
    try {
      c.kill("SIGKILL");
    } catch {}
  }
});

function log(...a) {
  console.log("[browser-test]", ...a);
}

async function goBuild(pkg, out) {
  log("go build", pkg);
  await execFileP("go", ["build", "-o", out, pkg], { cwd: root, maxBuffer: 16 << 20 });
  return out;
}

// start runs a command with its output appended to out/<name>.log.
function start(name, cmd, args) {
  const logFile = fs.openSync(path.join(outDir, `${name}.log`), "a");
  fs.writeSync(logFile, `\n=== ${new Date().toISOString()} ${cmd} ${args.join(" ")}\n`);
  const child = spawn(cmd, args, { cwd: root, stdio: ["ignore", logFile, logFile] });
  fs.closeSync(logFile);
  children.add(child);
  child.exited = new Promise((resolve) =>
    child.on("exit", (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  return child;
}

async function stopChild(child, signal = "SIGTERM", ms = 10_000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  const t = setTimeout(() => child.kill("SIGKILL"), ms);
  await child.exited;
  clearTimeout(t);
}

function tail(name, n = 30) {
  try {
    return fs.readFileSync(path.join(outDir, `${name}.log`), "utf8").split("\n").slice(-n).join("\n");
  } catch {
    return "";
  }
}

test("dashboard: live chart, command, broker restart", { timeout: 240_000 }, async () => {
  const bin = process.env.SAMSA_BIN || (await goBuild("./cmd/samsa", path.join(work, "samsa")));
  const sim = await goBuild("./examples/sensor-sim", path.join(work, "sensor-sim"));
  const dataDir = path.join(work, "data");
  const kafkaAddr = `127.0.0.1:${await freePort()}`;
  const httpAddr = `127.0.0.1:${await freePort()}`;
  // An empty config: every default, so the built-in console at /.
  const config = path.join(work, "broker.toml");
  fs.writeFileSync(config, "");
  const serveArgs = ["serve", "--config", config, "--data-dir", dataDir, "--kafka-addr", kafkaAddr, "--http-addr", httpAddr];

  // The broker; up when /healthz answers.
  let broker;
  const startBroker = async () => {
    broker = start("samsa", bin, serveArgs);
    const up = await Promise.race([
      waitFor("the broker's /healthz", async () => (await httpGet(`http://${httpAddr}/healthz`)).status === 200, 30_000),
      broker.exited.then((e) => ({ exited: e })),
    ]);
    return up === true ? null : up.exited;
  };
  let exited = await startBroker();
  assert.equal(exited, null, `samsa serve exited: ${JSON.stringify(exited)}\n${tail("samsa")}`);
  cleanups.push(() => stopChild(broker));

  const probe = await httpGet(`http://${httpAddr}/ws`);
  assert.notEqual(probe.status, 404, "samsa serve does not serve /ws (the WebSocket transport is not mounted on the HTTP listener)");
  assert.equal(probe.status, 400, `GET /ws without an upgrade: ${probe.status} ${probe.body}`);

  // The page and the SDK bundle come from the broker itself.
  const pageBase = `http://${httpAddr}`;
  const index = await httpGet(`${pageBase}/`);
  assert.equal(index.status, 200, `GET / from the broker: ${index.status} ${index.body}`);
  assert.match(index.body, /live dashboard/);
  assert.match(index.type, /^text\/html/);
  for (const f of ["/app.js", "/samsa.js"]) {
    const r = await httpGet(`${pageBase}${f}`);
    assert.equal(r.status, 200, `GET ${f} from the broker: ${r.status}`);
    assert.match(r.type, /^text\/javascript/, `${f} content type`);
  }
  const bundle = await httpGet(`${pageBase}/samsa.js`);
  assert.match(bundle.body, /samsa\.v1/, "/samsa.js is not the JS SDK's bundle");
  log(`broker http=${httpAddr} kafka=${kafkaAddr}; page served by the broker at ${pageBase}/`);

  // Readings flow.
  const simProc = start("sensor-sim", sim, ["--url", `ws://${httpAddr}/ws`, "--topic", "sensors", "--rate", "25", "--sensors", "3", "--quiet"]);
  cleanups.push(() => stopChild(simProc, "SIGINT"));

  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--no-first-run"],
  });
  cleanups.push(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const consoleLines = [];
  page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
  cleanups.push(() => fs.writeFileSync(path.join(outDir, "page-console.log"), consoleLines.join("\n") + "\n"));

  await page.goto(`${pageBase}/?topic=sensors`);
  const dash = () => page.evaluate(() => window.dashboard && { ...window.dashboard, offsets: window.dashboard.offsets.slice() });
  try {
    await page.waitForFunction(() => window.dashboard && window.dashboard.count >= 20, null, { timeout: 30_000 });
  } catch (e) {
    await page.screenshot({ path: path.join(outDir, "dashboard-failed.png") });
    throw new Error(`no records on the chart: ${e.message}\npage console:\n${consoleLines.join("\n")}\nsensor-sim:\n${tail("sensor-sim")}`);
  }
  const count = Number(await page.getAttribute("#chart", "data-count"));
  const lastOffset = await page.getAttribute("#last-offset", "data-offset");
  assert.ok(count >= 20, `data-count ${count}`);
  assert.match(lastOffset, /^\d+$/);
  log(`chart: ${count} records, last offset ${lastOffset}`);

  // A command from the form; its ack offset shows; the record is in
  // `commands` (read back over Kafka with the CLI).
  await page.fill("#pump", "pump-7");
  await page.fill("#speed", "42");
  await page.click("#send");
  await page.waitForFunction(() => document.getElementById("ack").dataset.offset !== "", null, { timeout: 15_000 });
  const ackOffset = await page.getAttribute("#ack", "data-offset");
  const ackText = await page.textContent("#ack");
  assert.match(ackText, new RegExp(`offset ${ackOffset}\\b`));
  log(`command acked: ${ackText}`);
  const { stdout } = await execFileP(
    bin,
    ["consume", "commands", "--from", "beginning", "-n", "1", "--brokers", kafkaAddr, "--format", "%o %k %v\\n", "--quiet", "--timeout", "20s"],
    { cwd: root, timeout: 30_000 },
  );
  const [off, key, ...rest] = stdout.trim().split(" ");
  assert.equal(off, ackOffset, `samsa consume: ${stdout}`);
  assert.equal(key, "pump-7");
  assert.deepEqual(JSON.parse(rest.join(" ")), { pump: "pump-7", speed: 42 });

  await page.screenshot({ path: path.join(outDir, "dashboard-before-restart.png") });

  // Restart the broker mid-stream: SIGTERM, then the same ports and data.
  const before = await dash();
  log(`restarting the broker at ${before.count} records (last ${JSON.stringify(before.last)})`);
  await stopChild(broker, "SIGTERM", 15_000);
  await new Promise((r) => setTimeout(r, 500));
  exited = await startBroker();
  assert.equal(exited, null, `samsa serve did not come back: ${JSON.stringify(exited)}\n${tail("samsa")}`);

  // The page reconnects and the chart goes on.
  try {
    await page.waitForFunction((n) => window.dashboard.count >= n + 40 && window.dashboard.state === "open", before.count, { timeout: 60_000 });
  } catch (e) {
    await page.screenshot({ path: path.join(outDir, "dashboard-failed.png") });
    throw new Error(`the chart did not continue after the restart: ${e.message}\n${JSON.stringify((await dash()).states)}\npage console:\n${consoleLines.join("\n")}\nsensor-sim:\n${tail("sensor-sim")}`);
  }
  const afterState = await dash();
  assert.ok(afterState.states.includes("reconnecting"), `states: ${afterState.states}`);
  assert.equal(afterState.duplicates, 0, "duplicate offsets on the chart");
  assert.equal(await page.getAttribute("#chart", "data-duplicates"), "0");

  // Every partition's offsets: strictly increasing and contiguous (the
  // subscription started at "latest", so from its first record on).
  const perPartition = new Map();
  for (const k of afterState.offsets) {
    const [p, o] = k.split(":").map(Number);
    if (!perPartition.has(p)) perPartition.set(p, []);
    perPartition.get(p).push(o);
  }
  for (const [p, offs] of perPartition) {
    for (let i = 1; i < offs.length; i++) {
      assert.equal(offs[i], offs[i - 1] + 1, `partition ${p}: offset ${offs[i]} after ${offs[i - 1]} (duplicate or gap)`);
    }
  }
  assert.equal(new Set(afterState.offsets).size, afterState.offsets.length);
  log(`after the restart: ${afterState.count} records, offsets ${afterState.offsets[0]}..${afterState.offsets.at(-1)}, no duplicates, no gaps; states ${afterState.states.join(" → ")}`);

  await page.waitForTimeout(300); // let the last frame paint
  await page.screenshot({ path: path.join(outDir, "dashboard.png") });
  log(`screenshot: ${path.join(outDir, "dashboard.png")}`);
});
