// An in-memory samsa.v1 server and a WebSocket class connected to it, for
// unit tests of the SDK: hello, produce/ack, subscribe (from, credit,
// deliveries, groups with one member), credit, unsubscribe, commit, ping.
// Hooks let a test drop links, refuse connections, hold acks and inject
// errors. With `auth` set, it requires authentication like a broker with
// [auth] enabled (PROTOCOL.md §9): nonce signing (verified with
// node:crypto), bearer tokens, a cookie, permissions, expiry (4001) and
// revocation; its "JWTs" are opaque strings registered in auth.tokens.
// It speaks the binary frames of PROTOCOL.md §6 too: kind 1 produce
// requests (answered by kind 2 acks) and kind 3 deliveries for
// subscriptions with "format":"binary"; like a browser, it hands binary
// frames to the client as a Blob unless binaryType is "arraybuffer"
// ("nodebuffer": a Buffer, like the ws package's default).
import { createPublicKey, randomBytes, verify } from "node:crypto";

/** Binary error codes (PROTOCOL.md §2). */
export const BINARY_CODES = ["ok", "bad_request", "unknown_op", "unknown_topic", "not_found", "too_large", "rejected", "forbidden", "unauthorized", "limit", "unavailable", "internal"];

const strictUTF8 = new TextDecoder("utf-8", { fatal: true });
const validUTF8 = (b) => {
  try {
    strictUTF8.decode(b);
    return true;
  } catch {
    return false;
  }
};

/** A JSON-form field (value, encoding) as bytes: json → its text, text → UTF-8, base64 → decoded; null → null. */
function fieldBytes(v, enc) {
  if (v === null || v === undefined) return null;
  if (enc === "base64") return Buffer.from(v, "base64");
  if (enc === "text") return Buffer.from(v, "utf8");
  return Buffer.from(JSON.stringify(v), "utf8");
}

/** A log record's bytes: {key, value, headers: [{key, value}]}. */
export function rawOf(r) {
  if (r.raw) return r.raw;
  return {
    key: fieldBytes(r.key, r.key_encoding ?? "text"),
    value: fieldBytes(r.value, r.encoding ?? "json"),
    headers: (r.headers ?? []).map((h) => ({ key: h.key, value: fieldBytes(h.value, h.encoding ?? "text") })),
  };
}

/** The JSON form of bytes delivered with encoding "auto" (PROTOCOL.md §3). */
function autoValue(b) {
  if (b === null) return { value: null, encoding: "json" };
  if (validUTF8(b)) {
    const t = b.toString("utf8");
    try {
      return { value: JSON.parse(t), encoding: "json" };
    } catch {
      return { value: t, encoding: "text" };
    }
  }
  return { value: b.toString("base64"), encoding: "base64" };
}
const autoText = (b) => (b === null ? { value: null } : validUTF8(b) ? { value: b.toString("utf8"), encoding: "text" } : { value: b.toString("base64"), encoding: "base64" });

/** Builds binary frames. */
class Writer {
  constructor() {
    this.parts = [];
  }
  u8(v) {
    this.parts.push(Buffer.from([v]));
    return this;
  }
  u16(v) {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(v);
    this.parts.push(b);
    return this;
  }
  u32(v) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.parts.push(b);
    return this;
  }
  i32(v) {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.parts.push(b);
    return this;
  }
  i64(v) {
    const b = Buffer.alloc(8);
    b.writeBigInt64LE(BigInt(v));
    this.parts.push(b);
    return this;
  }
  bytes(b) {
    this.parts.push(Buffer.from(b));
    return this;
  }
  str16(s) {
    const b = Buffer.from(s, "utf8");
    return this.u16(b.length).bytes(b);
  }
  nbytes(b) {
    return b === null ? this.i32(-1) : this.i32(b.length).bytes(b);
  }
  done() {
    return Buffer.concat(this.parts);
  }
}

/** Reads a kind 1 frame into {op:"produce", binary:true, id, topic, records:[{partition?, key, value, headers}]}. */
export function parseProduceFrame(buf) {
  let o = 1;
  const u16 = () => ((o += 2), buf.readUInt16LE(o - 2));
  const u32 = () => ((o += 4), buf.readUInt32LE(o - 4));
  const i32 = () => ((o += 4), buf.readInt32LE(o - 4));
  const take = (n) => {
    if (o + n > buf.length) throw new RangeError("short frame");
    return buf.subarray(o, (o += n));
  };
  const nbytes = () => {
    const n = i32();
    return n === -1 ? null : Buffer.from(take(n));
  };
  if (buf[0] !== 1) throw new RangeError(`kind ${buf[0]}`);
  const id = u32();
  const topic = take(u16()).toString("utf8");
  const records = [];
  for (let n = u32(); n > 0; n--) {
    const partition = i32();
    const r = { key: nbytes(), value: nbytes(), headers: [] };
    if (partition !== -1) r.partition = partition;
    for (let h = u16(); h > 0; h--) r.headers.push({ key: take(u16()).toString("utf8"), value: nbytes() });
    records.push(r);
  }
  if (o !== buf.length) throw new RangeError(`${buf.length - o} bytes after the records`);
  return { op: "produce", binary: true, id, topic, records };
}

/** The raw Ed25519 public key of an nkey ("U..."): base32 decoded, prefix byte and checksum dropped. */
export function nkeyRaw(pub) {
  const A = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  const bits = [...pub].map((ch) => A.indexOf(ch).toString(2).padStart(5, "0")).join("");
  const bytes = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  return bytes.subarray(1, 33);
}

function verifySig(pub, nonce, sig) {
  try {
    const key = createPublicKey({ key: Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), nkeyRaw(pub)]), format: "der", type: "spki" });
    return verify(null, nonce, key, Buffer.from(sig, "base64"));
  } catch {
    return false;
  }
}

const permits = (patterns, topic) => (patterns ?? []).some((p) => p === topic || (p.endsWith(">") && topic.startsWith(p.slice(0, -1))));

export class FakeServer {
  constructor() {
    /** topic -> array of partitions -> array of {key, value, encoding, ...} */
    this.topics = new Map();
    this.partitions = 1;
    /** every connection ever made */
    this.conns = [];
    /** frames received from clients (parsed), in order */
    this.frames = [];
    /** refuse the next N connection attempts (close 1006 without hello) */
    this.refuse = 0;
    /** times of connection attempts (ms) */
    this.attempts = [];
    /** when set, produce ops are answered by this function's result (an error object) or appended when it returns undefined */
    this.produceHook = null;
    /** when true, produce ops are appended but not acknowledged */
    this.holdAcks = false;
    /** when true, ping ops are not answered */
    this.mute = false;
    /** subscribe errors by topic: {code, message} */
    this.subscribeErrors = new Map();
    /** commits received: {group, topic, partition, offset} */
    this.commits = [];
    /** deliver records starting this many offsets before the requested one (to test client-side dedupe) */
    this.rewind = 0;
    /** when set, binary frames are handed over as this binaryType whatever the client set */
    this.forceBinaryType = undefined;
    /** binary frames sent to clients (Buffers), in order */
    this.binaryOut = [];
    /**
     * null: no authentication (hello auth "none"). Else:
     *   tokens: Map token -> {user, bearer?, expires? (ms), produce?: [pattern], consume?: [pattern]}
     *   users:  Map nkey ("U...") -> {name, produce?, consume?}  (static users)
     *   cookie: a token the upgrade requests carry
     *   revoked: Set of users
     */
    this.auth = null;
    const server = this;
    this.WebSocket = class extends FakeSocket {
      constructor(url, protocols) {
        super(server, url, protocols);
      }
    };
  }

  log(topic) {
    let t = this.topics.get(topic);
    if (!t) {
      t = Array.from({ length: this.partitions }, () => []);
      this.topics.set(topic, t);
    }
    return t;
  }

  /** Appends records as another producer would; returns the offsets. */
  append(topic, partition, ...values) {
    const p = this.log(topic)[partition];
    const offs = values.map((value) => {
      p.push({ value, encoding: typeof value === "string" ? "text" : "json", key: null, timestamp: Date.now() });
      return p.length - 1;
    });
    for (const c of this.live()) c.pumpAll();
    return offs;
  }

  live() {
    return this.conns.filter((c) => c.readyState === 1);
  }

  /** Closes every open connection with code (1006: no close frame). */
  drop(code = 1006, reason = "") {
    for (const c of this.live()) c.serverClose(code, reason);
  }

  /** Requires authentication from now on (new connections). */
  requireAuth() {
    this.auth = { tokens: new Map(), users: new Map(), cookie: undefined, revoked: new Set() };
    return this.auth;
  }

  /** Revokes user: its connections close with 4001, its tokens fail. */
  revoke(user) {
    this.auth.revoked.add(user);
    for (const c of this.live()) if (c.principal?.user === user) c.serverClose(4001, "revoked");
  }

  opsOf(op) {
    return this.frames.filter((f) => f.op === op);
  }
}

class FakeSocket {
  constructor(server, url, protocols) {
    this.server = server;
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.binaryType = "blob";
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    this.subs = new Map();
    server.conns.push(this);
    server.attempts.push(Date.now());
    setTimeout(() => {
      if (server.refuse > 0) {
        server.refuse--;
        this.readyState = 3;
        this.onerror?.({});
        this.onclose?.({ code: 1006, reason: "" });
        return;
      }
      this.readyState = 1;
      this.onopen?.({});
      this.nonce = randomBytes(16);
      const a = server.auth;
      this.out({ type: "hello", version: 1, server: "samsa", session: "fake" + server.conns.length, nonce: this.nonce.toString("base64"), auth: a ? "required" : "none", limits: { max_frame_bytes: 1 << 20, max_subscriptions: 64, max_pending_bytes: 4 << 20 } });
      if (a?.cookie !== undefined) {
        const p = this.check(a.tokens.get(a.cookie), true);
        if (typeof p === "string") this.out({ type: "error", code: "unauthorized", message: p });
        else {
          this.setPrincipal(p);
          this.out({ type: "authenticated", via: "cookie", user: p.user, expires: p.expires });
        }
      }
    }, 1);
  }

  /** A token's principal, or why it is refused. */
  check(tok, bearer) {
    if (!tok) return "authentication failed: unknown token";
    if (!!tok.bearer !== bearer) return `authentication failed: ${bearer ? "not a bearer token" : "a bearer token needs the bearer field"}`;
    if (tok.expires !== undefined && tok.expires <= Date.now()) return "token expired";
    if (this.server.auth.revoked.has(tok.user)) return "revoked";
    return tok;
  }

  /** The principal of an auth op, or why it is refused. */
  verifyAuth(m) {
    const a = this.server.auth;
    if (m.bearer !== undefined) return this.check(a.tokens.get(m.bearer), true);
    if (m.jwt !== undefined) {
      const p = this.check(a.tokens.get(m.jwt), false);
      if (typeof p === "string") return p;
      return verifySig(p.user, this.nonce, m.sig ?? "") ? p : "authentication failed: bad signature";
    }
    if (m.nkey !== undefined) {
      const u = a.users.get(m.nkey);
      if (!u) return "authentication failed: unknown user";
      return verifySig(m.nkey, this.nonce, m.sig ?? "") ? { ...u, user: u.name } : "authentication failed: bad signature";
    }
    return "auth: give jwt and sig or bearer";
  }

  setPrincipal(p) {
    this.principal = p;
    clearTimeout(this.expiry);
    if (p.expires !== undefined) this.expiry = setTimeout(() => this.serverClose(4001, "token expired"), p.expires - Date.now());
  }

  out(msg) {
    if (this.readyState !== 1) return;
    const data = JSON.stringify(msg);
    queueMicrotask(() => this.readyState === 1 && this.onmessage?.({ data }));
  }

  /** Sends a binary frame (a Buffer), typed as the socket's binaryType asks. */
  outBinary(buf) {
    if (this.readyState !== 1) return;
    this.server.binaryOut.push(buf);
    const t = this.server.forceBinaryType ?? this.binaryType;
    const data = t === "arraybuffer" ? buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length) : t === "nodebuffer" ? buf : new Blob([buf]);
    queueMicrotask(() => this.readyState === 1 && this.onmessage?.({ data }));
  }

  /** A kind 2 ack: results, or an error {code, message}. */
  binaryAck(id, results, err) {
    const w = new Writer().u8(2).u32(id);
    if (err) {
      const code = BINARY_CODES.indexOf(err.code);
      w.u16(code > 0 ? code : 11).str16(err.message ?? "");
    } else {
      w.u16(0).u32(results.length);
      for (const r of results) w.i32(r.partition).i64(r.offset);
    }
    this.outBinary(w.done());
  }

  serverClose(code, reason = "") {
    clearTimeout(this.expiry);
    if (this.readyState >= 2) return;
    this.readyState = 3;
    this.subs.clear();
    setTimeout(() => this.onclose?.({ code, reason }), 0);
  }

  close(code = 1000, reason = "") {
    clearTimeout(this.expiry);
    if (this.readyState >= 2) return;
    this.readyState = 2;
    this.subs.clear();
    setTimeout(() => {
      this.readyState = 3;
      this.onclose?.({ code: code === 4000 ? 1006 : code, reason });
    }, 0);
  }

  send(data) {
    if (this.readyState !== 1) throw new Error("not open");
    if (typeof data !== "string") return this.sendBinary(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    const m = JSON.parse(data);
    this.server.frames.push(m);
    const reply = (o) => this.out(m.id === undefined ? o : { ...o, id: m.id });
    const s = this.server;
    if (s.auth && m.op !== "auth" && m.op !== "ping") {
      if (!this.principal) return reply({ type: "error", code: "unauthorized", message: "not authenticated" });
      const need = m.op === "produce" ? this.principal.produce : m.op === "subscribe" ? this.principal.consume : null;
      if (need !== null && !permits(need, m.topic)) return reply({ type: "error", code: "forbidden", message: `${this.principal.user} may not ${m.op} ${m.topic}` });
    }
    switch (m.op) {
      case "auth": {
        if (!s.auth) return reply({ type: "authenticated" });
        const p = this.verifyAuth(m);
        if (typeof p === "string") return reply({ type: "error", code: "unauthorized", message: p });
        if (this.principal && this.principal.user !== p.user) return reply({ type: "error", code: "forbidden", message: "another user" });
        this.setPrincipal(p);
        return reply({ type: "authenticated", user: p.user, expires: p.expires });
      }
      case "produce": {
        const err = s.produceHook?.(m);
        if (err) return reply({ type: "error", ...err });
        const log = s.log(m.topic);
        const results = m.records.map((r) => {
          const p = r.partition ?? 0;
          log[p].push({ ...r, encoding: r.encoding ?? "json", timestamp: r.timestamp ?? Date.now() });
          return { partition: p, offset: log[p].length - 1 };
        });
        if (!s.holdAcks) reply({ type: "ack", results });
        for (const c of s.live()) c.pumpAll();
        return;
      }
      case "subscribe": {
        const e = s.subscribeErrors.get(m.topic);
        if (e) return reply({ type: "error", ...e });
        if (this.subs.has(m.sub)) return reply({ type: "error", code: "bad_request", message: "duplicate sub" });
        const log = s.log(m.topic);
        const parts = m.partitions ?? log.map((_, i) => i);
        const next = new Map();
        for (const p of parts) {
          const f = m.from ?? "latest";
          let off;
          if (f === "earliest") off = 0;
          else if (f === "latest") off = log[p].length;
          else if (f.offset !== undefined) off = f.offset;
          else if (f.offsets) off = f.offsets[p] ?? 0;
          else off = 0;
          if (m.group) {
            const c = s.commits.filter((x) => x.group === m.group && x.partition === p).at(-1);
            if (c && (f.offsets?.[p] === undefined || c.offset > f.offsets[p])) off = c.offset;
          }
          next.set(p, Math.max(0, Math.min(off, log[p].length) - s.rewind));
        }
        const sub = { name: m.sub, topic: m.topic, group: m.group, credit: m.credit ?? 1000, next, binary: m.format === "binary" };
        this.subs.set(m.sub, sub);
        const partitions = parts.map((p) => ({ partition: p, offset: next.get(p), high_watermark: log[p].length }));
        if (m.group) {
          reply({ type: "subscribed", sub: m.sub, topic: m.topic, group: m.group, partitions: [] });
          this.out({ type: "assigned", sub: m.sub, topic: m.topic, group: m.group, member: "m1", generation: 1, partitions });
        } else reply({ type: "subscribed", sub: m.sub, topic: m.topic, partitions });
        queueMicrotask(() => this.pump(sub));
        return;
      }
      case "credit": {
        const sub = this.subs.get(m.sub);
        if (!sub) return reply({ type: "error", code: "not_found", message: "unknown sub" });
        sub.credit += m.records;
        this.pump(sub);
        return;
      }
      case "unsubscribe":
        if (!this.subs.delete(m.sub)) return reply({ type: "error", code: "not_found", message: "unknown sub" });
        return reply({ type: "unsubscribed", sub: m.sub });
      case "commit": {
        const sub = m.sub && this.subs.get(m.sub);
        if (m.sub && !sub) return reply({ type: "error", code: "not_found", message: "unknown sub" });
        if (s.commitError) {
          const e = s.commitError;
          s.commitError = null;
          return reply({ type: "error", ...e });
        }
        for (const o of m.offsets) s.commits.push({ group: sub ? sub.group : m.group, topic: sub ? sub.topic : m.topic, ...o });
        return reply({ type: "committed" });
      }
      case "ping":
        if (!s.mute) reply({ type: "pong" });
        return;
      default:
        return reply({ type: "error", code: "unknown_op", message: m.op });
    }
  }

  sendBinary(buf) {
    const s = this.server;
    let m;
    try {
      m = parseProduceFrame(buf);
    } catch (e) {
      return this.out({ type: "error", code: "bad_request", message: `binary frame: ${e.message}` });
    }
    s.frames.push(m);
    if (s.auth) {
      if (!this.principal) return this.binaryAck(m.id, null, { code: "unauthorized", message: "not authenticated" });
      if (!permits(this.principal.produce, m.topic)) return this.binaryAck(m.id, null, { code: "forbidden", message: `${this.principal.user} may not produce ${m.topic}` });
    }
    const err = s.produceHook?.(m);
    if (err) return this.binaryAck(m.id, null, err);
    const log = s.log(m.topic);
    const results = m.records.map((r) => {
      const p = r.partition ?? 0;
      if (p < 0 || p >= log.length) return null;
      const v = autoValue(r.value);
      const rec = { raw: r, value: v.value, encoding: v.encoding, key: null, timestamp: Date.now() };
      if (r.key !== null) {
        const k = autoText(r.key);
        rec.key = k.value;
        rec.key_encoding = k.encoding;
      }
      if (r.headers.length) rec.headers = r.headers.map((h) => ({ key: h.key, ...autoText(h.value) }));
      log[p].push(rec);
      return { partition: p, offset: log[p].length - 1 };
    });
    if (results.includes(null)) return this.binaryAck(m.id, null, { code: "unknown_topic", message: "no such partition" });
    if (!s.holdAcks) this.binaryAck(m.id, results);
    for (const c of s.live()) c.pumpAll();
  }

  pumpAll() {
    for (const sub of this.subs.values()) this.pump(sub);
  }

  pump(sub) {
    if (this.readyState !== 1 || this.subs.get(sub.name) !== sub) return;
    const log = this.server.log(sub.topic);
    const recs = [];
    for (const [p, off] of sub.next) {
      let o = off;
      while (sub.credit > 0 && o < log[p].length) {
        const r = log[p][o];
        const d = { partition: p, offset: o, timestamp: r.timestamp, key: r.key ?? null, value: r.value ?? null, encoding: r.encoding };
        if (r.key != null) d.key_encoding = r.key_encoding ?? "text";
        if (r.headers) d.headers = r.headers.map((h) => ({ encoding: "text", ...h }));
        recs.push(d);
        o++;
        sub.credit--;
      }
      sub.next.set(p, o);
    }
    if (!recs.length) return;
    if (!sub.binary) return this.out({ type: "records", sub: sub.name, records: recs });
    const w = new Writer().u8(3).str16(sub.name).u32(recs.length);
    for (const d of recs) {
      const raw = rawOf(log[d.partition][d.offset]);
      w.i32(d.partition).i64(d.offset).i64(d.timestamp).nbytes(raw.key).nbytes(raw.value).u16(raw.headers.length);
      for (const h of raw.headers) w.str16(h.key).nbytes(h.value);
    }
    this.outBinary(w.done());
  }
}
