// Starts real `samsa serve` brokers for the integration tests.
//
// The binary is built once from the repository (go build ./cmd/samsa), or
// taken from $SAMSA_BIN. Without go (and no SAMSA_BIN) the integration
// tests skip, except under CI=true where they fail.
import { before, after } from "node:test";
import { spawn, spawnSync, execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

export function repoRoot() {
  let d = here;
  for (;;) {
    const f = join(d, "go.mod");
    if (existsSync(f) && /^module github\.com\/samsa-broker\/samsa\s*$/m.test(readFileSync(f, "utf8"))) return d;
    const up = dirname(d);
    if (up === d) return null;
    d = up;
  }
}

/** Why the integration tests cannot run here (false: they can). Throws under CI=true. */
export function skipReason() {
  if (process.env.SAMSA_BIN) return false;
  const haveGo = spawnSync("go", ["version"], { stdio: "ignore" }).status === 0;
  let reason = false;
  if (!haveGo) reason = "go is not on PATH";
  else if (!repoRoot()) reason = "not inside the samsa repository";
  if (reason && process.env.CI === "true") throw new Error(`integration tests cannot run under CI=true: ${reason}`);
  return reason;
}

const tmp = mkdtempSync(join(tmpdir(), "samsa-js-"));
const live = new Set();
process.on("exit", () => {
  for (const p of live) p.kill("SIGKILL");
  rmSync(tmp, { recursive: true, force: true });
});

/** A new temporary directory, removed when the process exits. */
export function tempDir(prefix = "dir-") {
  return mkdtempSync(join(tmp, prefix));
}

let built;
/** Path of the samsa binary (built once per process). */
export function samsaBin() {
  if (process.env.SAMSA_BIN) return process.env.SAMSA_BIN;
  if (!built) {
    const out = join(tmp, "samsa");
    const r = spawnSync("go", ["build", "-o", out, "./cmd/samsa"], { cwd: repoRoot(), encoding: "utf8", timeout: 600_000 });
    if (r.status !== 0) throw new Error(`go build ./cmd/samsa failed:\n${r.stderr}${r.stdout}`);
    built = out;
  }
  return built;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Runs a samsa CLI subcommand; resolves with stdout. */
export function samsa(...args) {
  return new Promise((resolve, reject) => {
    execFile(samsaBin(), args, { cwd: tmp, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`samsa ${args.join(" ")}: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Broker {
  /** Starts a broker; config, when given, is the text of its broker.toml. */
  static async create({ config } = {}) {
    const b = new Broker();
    b.dataDir = mkdtempSync(join(tmp, "data-"));
    if (config !== undefined) {
      b.configFile = join(b.dataDir, "..", `${b.dataDir.split("/").pop()}.toml`);
      writeFileSync(b.configFile, config);
    }
    b.kafkaPort = await freePort();
    b.httpPort = await freePort();
    await b.start();
    return b;
  }

  get url() {
    return `ws://127.0.0.1:${this.httpPort}/ws`;
  }

  get brokers() {
    return `127.0.0.1:${this.kafkaPort}`;
  }

  /** Starts `samsa serve` and waits for /ws to answer with hello. */
  async start() {
    this.log = "";
    const args = ["serve", "--data-dir", this.dataDir, "--kafka-addr", this.brokers, "--http-addr", `127.0.0.1:${this.httpPort}`];
    if (this.configFile) args.push("--config", this.configFile);
    const p = spawn(samsaBin(), args, { cwd: tmp, stdio: ["ignore", "pipe", "pipe"] });
    this.proc = p;
    live.add(p);
    const onData = (d) => {
      this.log += d;
      if (this.log.length > 1 << 20) this.log = this.log.slice(-(1 << 19));
    };
    p.stdout.on("data", onData);
    p.stderr.on("data", onData);
    this.exited = new Promise((res) =>
      p.on("exit", (code, signal) => {
        live.delete(p);
        res({ code, signal });
      }),
    );
    const deadline = Date.now() + 30_000;
    let last;
    while (Date.now() < deadline) {
      if (p.exitCode !== null) throw new Error(`samsa serve exited (${p.exitCode}):\n${this.log}`);
      try {
        await this.probe();
        return;
      } catch (e) {
        last = e;
        await sleep(50);
      }
    }
    throw new Error(`samsa serve did not serve /ws within 30 s (${last?.message}):\n${this.log}`);
  }

  /** Opens a raw WebSocket with samsa.v1 and waits for hello. */
  async probe() {
    const { WebSocket } = await import("ws");
    await new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url, "samsa.v1");
      const t = setTimeout(() => {
        ws.terminate();
        reject(new Error("no hello"));
      }, 2000);
      ws.on("unexpected-response", (_req, res) => {
        clearTimeout(t);
        ws.terminate();
        reject(new Error(`HTTP ${res.statusCode} on /ws`));
      });
      ws.on("error", (e) => {
        clearTimeout(t);
        reject(e);
      });
      ws.on("message", (d) => {
        clearTimeout(t);
        const m = JSON.parse(String(d));
        ws.close();
        if (m.type === "hello") resolve();
        else reject(new Error(`first frame is ${m.type}`));
      });
    });
  }

  /** kill -TERM and wait for the exit. */
  async stop(signal = "SIGTERM") {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill(signal);
    const t = setTimeout(() => this.proc.kill("SIGKILL"), 15_000);
    const r = await this.exited;
    clearTimeout(t);
    return r;
  }

  async restart() {
    await this.stop();
    await this.start();
  }
}

/**
 * Registers before/after hooks in the enclosing describe block: a fresh
 * broker for the block, and clients opened with env.open (connect with a
 * short backoff) closed at its end. env.broker is the Broker.
 */
export function useBroker(connect) {
  const clients = [];
  const env = {
    broker: undefined,
    async open(opts = {}) {
      const c = await connect(env.broker.url, { backoff: { initialMs: 50, maxMs: 1000 }, ...opts });
      clients.push(c);
      return c;
    },
  };
  before(async () => {
    samsaBin();
    env.broker = await Broker.create();
  });
  after(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await env.broker?.stop();
  });
  return env;
}
