// A JavaScript host for samsa filter modules (ABI version 1, wasm/ABI.md),
// enough to test them: the encoding of batches and decisions, and an
// instance with captured stdout and stderr. Only the WASI calls an
// AssemblyScript filter makes (fd_write, random_get) are provided.
import { readFileSync } from "node:fs";

const te = new TextEncoder();
const td = new TextDecoder();

class W {
  constructor() { this.parts = []; }
  u8(v) { this.parts.push(Uint8Array.of(v)); }
  u32(v) { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, v >>> 0, true); this.parts.push(b); }
  i64(v) { const b = new Uint8Array(8); new DataView(b.buffer).setBigInt64(0, BigInt(v), true); this.parts.push(b); }
  raw(b) { this.parts.push(b); }
  bytes(v) {
    if (v == null) return this.u32(0xffffffff);
    const b = typeof v === "string" ? te.encode(v) : v;
    this.u32(b.length); this.raw(b);
  }
  str(s) { const b = te.encode(s); this.u32(b.length); this.raw(b); }
  done() {
    const n = this.parts.reduce((a, p) => a + p.length, 0);
    const out = new Uint8Array(n);
    let o = 0;
    for (const p of this.parts) { out.set(p, o); o += p.length; }
    return out;
  }
}

/** Encodes {topic, partition, records: [{offset, timestamp, key, value, headers: [[k, v]]}]}; strings are UTF-8, null is null. */
export function encodeBatch(b) {
  const w = new W();
  w.u32(1); w.str(b.topic); w.u32(b.partition ?? 0); w.u32(b.records.length);
  b.records.forEach((r, i) => {
    w.i64(r.offset ?? i); w.i64(r.timestamp ?? 0);
    w.bytes(r.key ?? null); w.bytes(r.value ?? null);
    const hs = r.headers ?? [];
    w.u32(hs.length);
    for (const [k, v] of hs) { w.str(k); w.bytes(v); }
  });
  return w.done();
}

const ACTIONS = ["keep", "drop", "rewrite", "route", "reject"];

/** Decodes decisions into [{action, topics?, key?, value?, headers?, message?}] with byte fields as strings (null for null). */
export function decodeDecisions(buf) {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let o = 0;
  const need = (n) => { if (o + n > buf.length) throw new Error(`decisions: short at ${o}`); };
  const u8 = () => { need(1); return buf[o++]; };
  const u32 = () => { need(4); const v = dv.getUint32(o, true); o += 4; return v; };
  const bytes = () => {
    const n = dv.getInt32((need(4), o), true); o += 4;
    if (n === -1) return null;
    need(n); const s = td.decode(buf.subarray(o, o + n)); o += n; return s;
  };
  const str = () => { const n = u32(); need(n); const s = td.decode(buf.subarray(o, o + n)); o += n; return s; };
  const rw = (d) => {
    d.key = bytes(); d.value = bytes();
    const h = u32(); d.headers = [];
    for (let i = 0; i < h; i++) d.headers.push([str(), bytes()]);
  };
  const n = u32();
  const ds = [];
  for (let i = 0; i < n; i++) {
    const a = u8();
    const d = { action: ACTIONS[a] ?? `action(${a})` };
    if (a === 2) rw(d);
    else if (a === 3) {
      const t = u32(); d.topics = [];
      for (let j = 0; j < t; j++) d.topics.push(str());
      const f = u8();
      if (f === 1) rw(d); else if (f !== 0) throw new Error(`bad rewrite flag ${f}`);
    } else if (a === 4) d.message = str();
    else if (a > 4) throw new Error(`unknown action ${a}`);
    ds.push(d);
  }
  if (o !== buf.length) throw new Error(`decisions: ${buf.length - o} bytes left over`);
  return ds;
}

/** The module's exports and imports. */
export function listModule(file) {
  const m = new WebAssembly.Module(readFileSync(file));
  return { exports: WebAssembly.Module.exports(m), imports: WebAssembly.Module.imports(m) };
}

/**
 * Instantiates a filter module the way the broker does: _initialize,
 * samsa_abi_version, samsa_init(params). Returns {init, stdout, stderr,
 * filter(batch) -> decisions | null (negative result), exports}. A trap
 * throws a WebAssembly.RuntimeError. A module without samsa_abi_version (a
 * unit-test module) gets only {exports, stdout, stderr}.
 */
export function instantiate(file, params = "") {
  const out = { stdout: [], stderr: [] };
  let x;
  const mem = () => new DataView(x.memory.buffer);
  const wasi = {
    fd_write(fd, iovs, n, nwritten) {
      const dv = mem();
      let total = 0;
      for (let i = 0; i < n; i++) {
        const p = dv.getUint32(iovs + 8 * i, true), l = dv.getUint32(iovs + 8 * i + 4, true);
        const s = td.decode(new Uint8Array(x.memory.buffer, p, l));
        const stream = fd === 1 ? out.stdout : out.stderr;
        stream.push(...s.split("\n").filter((line) => line !== ""));
        total += l;
      }
      dv.setUint32(nwritten, total, true);
      return 0;
    },
    random_get(p, l) { crypto.getRandomValues(new Uint8Array(x.memory.buffer, p, l)); return 0; },
  };
  const m = new WebAssembly.Module(readFileSync(file));
  x = new WebAssembly.Instance(m, { wasi_snapshot_preview1: wasi }).exports;
  if (x._start) throw new Error("module exports _start");
  if (x._initialize) x._initialize();
  if (!x.samsa_abi_version) return { exports: x, ...out }; // a test module, not a filter
  const abi = x.samsa_abi_version();
  const pass = (b) => {
    const p = x.samsa_alloc(b.length);
    if (p === 0) throw new Error("samsa_alloc returned 0");
    new Uint8Array(x.memory.buffer).set(b, p);
    return p;
  };
  const pb = te.encode(params);
  const init = x.samsa_init(pass(pb), pb.length);
  return {
    abi, init, exports: x, ...out,
    filter(batch) {
      const b = encodeBatch(batch);
      const res = BigInt.asUintN(64, x.samsa_filter(pass(b), b.length));
      if (res >> 63n) return null;
      const p = Number(res >> 32n), l = Number(res & 0xffffffffn);
      return decodeDecisions(new Uint8Array(x.memory.buffer).slice(p, p + l));
    },
  };
}
