// The encoding of ABI version 1 (wasm/ABI.md, "Encoding"): little-endian;
// bytes are an i32 length (-1 for null) and the bytes; strings a u32 length
// and UTF-8 bytes. Pure AssemblyScript: no WASI, no imports.

import { ABI_VERSION, Action, Batch, Decision, Header, Record } from "./types";

/** Reads ABI bytes from linear memory with bounds checks; the first problem is kept in `error`. */
export class Reader {
  off: usize = 0;
  error: string | null = null;

  constructor(public ptr: usize, public len: usize) {}

  private need(n: usize, what: string): bool {
    if (this.error != null) return false;
    if (n > this.len - this.off) {
      this.error = "decode " + what + " at byte " + this.off.toString() + ": input too short";
      return false;
    }
    return true;
  }

  u8(what: string): u8 {
    if (!this.need(1, what)) return 0;
    const v = load<u8>(this.ptr + this.off);
    this.off += 1;
    return v;
  }

  u32(what: string): u32 {
    if (!this.need(4, what)) return 0;
    const v = load<u32>(this.ptr + this.off);
    this.off += 4;
    return v;
  }

  i64(what: string): i64 {
    if (!this.need(8, what)) return 0;
    const v = load<i64>(this.ptr + this.off);
    this.off += 8;
    return v;
  }

  /** A u32 count, checked against what is left (each element takes at least min bytes). */
  count(what: string, min: usize): i32 {
    const n = this.u32(what);
    if (this.error != null) return 0;
    if (<u64>n * <u64>min > <u64>(this.len - this.off)) {
      this.error = "decode " + what + ": count " + n.toString() + " does not fit in the input";
      return 0;
    }
    return <i32>n;
  }

  bytes(what: string): Uint8Array | null {
    const n = <i32>this.u32(what);
    if (this.error != null || n == -1) return null;
    if (n < 0) {
      this.error = "decode " + what + ": negative length " + n.toString();
      return null;
    }
    if (!this.need(<usize>n, what)) return null;
    const b = new Uint8Array(n);
    memory.copy(b.dataStart, this.ptr + this.off, n);
    this.off += n;
    return b;
  }

  str(what: string): string {
    const n = this.u32(what);
    if (!this.need(<usize>n, what)) return "";
    const s = String.UTF8.decodeUnsafe(this.ptr + this.off, n);
    this.off += n;
    return s;
  }

  headers(): Header[] {
    const n = this.count("header count", 8);
    const hs = new Array<Header>(0);
    for (let i = 0; i < n && this.error == null; i++) {
      const k = this.str("header key");
      hs.push(new Header(k, this.bytes("header value")));
    }
    return hs;
  }
}

/** The result of decodeBatch: a batch, or an error. */
export class DecodedBatch {
  constructor(public batch: Batch | null, public error: string | null) {}
}

/** Decodes an input batch (host to guest) of len bytes at ptr. */
export function decodeBatch(ptr: usize, len: usize): DecodedBatch {
  const r = new Reader(ptr, len);
  const v = r.u32("abi version");
  if (r.error == null && v != ABI_VERSION) {
    return new DecodedBatch(null, "decode batch: abi version " + v.toString() + ", want " + ABI_VERSION.toString());
  }
  const b = new Batch();
  b.topic = r.str("topic");
  b.partition = <i32>r.u32("partition");
  const n = r.count("record count", 8 + 8 + 4 + 4 + 4);
  for (let i = 0; i < n && r.error == null; i++) {
    const rec = new Record();
    rec.offset = r.i64("offset");
    rec.timestamp = r.i64("timestamp");
    rec.key = r.bytes("key");
    rec.value = r.bytes("value");
    rec.headers = r.headers();
    b.records.push(rec);
  }
  if (r.error != null) return new DecodedBatch(null, "decode batch: " + r.error!);
  if (r.off != len) return new DecodedBatch(null, "decode batch: " + (len - r.off).toString() + " bytes left over");
  return new DecodedBatch(b, null);
}

/** Writes ABI bytes into a growable buffer. */
export class Writer {
  buf: ArrayBuffer;
  len: i32 = 0;

  constructor(capacity: i32 = 256) {
    this.buf = new ArrayBuffer(max(capacity, 16));
  }

  /** Empties the writer, keeping its buffer. */
  reset(): void {
    this.len = 0;
  }

  private grow(n: i32): usize {
    if (this.len + n > this.buf.byteLength) {
      let c = this.buf.byteLength * 2;
      while (c < this.len + n) c *= 2;
      const nb = new ArrayBuffer(c);
      memory.copy(changetype<usize>(nb), changetype<usize>(this.buf), this.len);
      this.buf = nb;
    }
    const p = changetype<usize>(this.buf) + this.len;
    this.len += n;
    return p;
  }

  u8(v: u8): void {
    store<u8>(this.grow(1), v);
  }

  u32(v: u32): void {
    store<u32>(this.grow(4), v);
  }

  i64(v: i64): void {
    store<i64>(this.grow(8), v);
  }

  bytes(b: Uint8Array | null): void {
    if (b == null) {
      this.u32(0xffffffff);
      return;
    }
    this.u32(<u32>b.byteLength);
    memory.copy(this.grow(b.byteLength), b.dataStart, b.byteLength);
  }

  str(s: string): void {
    const n = String.UTF8.byteLength(s);
    this.u32(<u32>n);
    String.UTF8.encodeUnsafe(changetype<usize>(s), s.length, this.grow(n));
  }

  headers(hs: Header[]): void {
    this.u32(<u32>hs.length);
    for (let i = 0; i < hs.length; i++) {
      this.str(hs[i].key);
      this.bytes(hs[i].value);
    }
  }

  /** A pointer to the bytes written so far (valid until the next write). */
  get ptr(): usize {
    return changetype<usize>(this.buf);
  }

  /** A copy of the bytes written so far. */
  toUint8Array(): Uint8Array {
    const out = new Uint8Array(this.len);
    memory.copy(out.dataStart, changetype<usize>(this.buf), this.len);
    return out;
  }
}

/** Appends the encoding of decisions (guest to host) to w. */
export function encodeDecisions(w: Writer, ds: Decision[]): void {
  w.u32(<u32>ds.length);
  for (let i = 0; i < ds.length; i++) {
    const d = ds[i];
    w.u8(<u8>d.action);
    if (d.action == Action.Rewrite) {
      w.bytes(d.key);
      w.bytes(d.value);
      w.headers(d.headers);
    } else if (d.action == Action.Route) {
      w.u32(<u32>d.topics.length);
      for (let j = 0; j < d.topics.length; j++) w.str(d.topics[j]);
      if (d.hasRewrite) {
        w.u8(1);
        w.bytes(d.key);
        w.bytes(d.value);
        w.headers(d.headers);
      } else {
        w.u8(0);
      }
    } else if (d.action == Action.Reject) {
      w.str(d.message);
    }
  }
}

/** Appends the encoding of an input batch to w: the inverse of decodeBatch, for tests. */
export function encodeBatch(w: Writer, b: Batch): void {
  w.u32(ABI_VERSION);
  w.str(b.topic);
  w.u32(<u32>b.partition);
  w.u32(<u32>b.records.length);
  for (let i = 0; i < b.records.length; i++) {
    const r = b.records[i];
    w.i64(r.offset);
    w.i64(r.timestamp);
    w.bytes(r.key);
    w.bytes(r.value);
    w.headers(r.headers);
  }
}

/** Checks decisions before they are encoded: one per record and known actions. Returns an error or null. */
export function checkDecisions(ds: Decision[], records: i32): string | null {
  if (ds.length != records) {
    return "handler returned " + ds.length.toString() + " decisions for " + records.toString() + " records";
  }
  for (let i = 0; i < ds.length; i++) {
    if (<u8>ds[i].action > <u8>Action.Reject) return "decision " + i.toString() + ": unknown action " + (<u8>ds[i].action).toString();
  }
  return null;
}
