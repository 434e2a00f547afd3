// Binary frames of samsa.v1 (PROTOCOL.md §6): kind 1 produce requests,
// kind 2 acks and kind 3 record deliveries. Integers are little-endian; a
// byte field's i32 length of -1 is a null.

import { SamsaError } from "./errors.js";

type Bytes = Uint8Array | null;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** UTF-8 bytes of s. */
export const utf8 = (s: string): Uint8Array => encoder.encode(s);

/** The binary error codes of PROTOCOL.md §2 (index = code; 0 is ok). */
const CODES = "ok bad_request unknown_op unknown_topic not_found too_large rejected forbidden unauthorized limit unavailable internal".split(" ");

/**
 * The bytes of a key, value or header value in a binary produce: bytes as
 * they are, strings UTF-8 (JSON text first when jsonStrings), any other
 * value its JSON text; null/undefined is a Kafka null.
 */
export function toBytes(v: unknown, jsonStrings = false): Bytes {
  if (v == null) return null;
  if (v instanceof Uint8Array) return v;
  const s = typeof v === "string" && !jsonStrings ? v : JSON.stringify(v);
  return s === undefined ? null : utf8(s);
}

const len = (b: Bytes) => (b ? b.length : 0);

/**
 * One record of a kind 1 frame: i32 partition (-1: by key), key, value,
 * headers (u16 count; u16 key length, key, value).
 */
export function binRecord(partition: number, key: Bytes, value: Bytes, headers: Array<[Uint8Array, Bytes]>): Uint8Array {
  let n = 14 + len(key) + len(value);
  for (const [k, v] of headers) n += 6 + k.length + len(v);
  const b = new Uint8Array(n);
  const d = new DataView(b.buffer);
  let o = 0;
  const nbytes = (v: Bytes) => {
    d.setInt32(o, v ? v.length : -1, true);
    o += 4;
    if (v) b.set(v, o), (o += v.length);
  };
  d.setInt32(o, partition, true);
  o += 4;
  nbytes(key);
  nbytes(value);
  d.setUint16(o, headers.length, true);
  o += 2;
  for (const [k, v] of headers) {
    d.setUint16(o, k.length, true);
    b.set(k, o + 2);
    o += 2 + k.length;
    nbytes(v);
  }
  return b;
}

/** A kind 1 frame: request id, topic, the records (encoded by binRecord). */
export function produceFrame(id: number, topic: Uint8Array, recs: Uint8Array[]): Uint8Array {
  let n = 11 + topic.length;
  for (const r of recs) n += r.length;
  const b = new Uint8Array(n);
  const d = new DataView(b.buffer);
  b[0] = 1;
  d.setUint32(1, id, true);
  d.setUint16(5, topic.length, true);
  b.set(topic, 7);
  let o = 7 + topic.length;
  d.setUint32(o, recs.length, true);
  o += 4;
  for (const r of recs) b.set(r, o), (o += r.length);
  return b;
}

/** Reads a frame; every read past its end throws. */
class Reader {
  o = 1; // after the kind
  readonly d: DataView;
  constructor(readonly b: Uint8Array) {
    this.d = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  private at(n: number): number {
    const o = this.o;
    if (n < 0 || o + n > this.b.length) throw new RangeError("truncated binary frame");
    this.o += n;
    return o;
  }
  u16 = () => this.d.getUint16(this.at(2), true);
  u32 = () => this.d.getUint32(this.at(4), true);
  i32 = () => this.d.getInt32(this.at(4), true);
  /** An i64 as a number (exact below 2^53). */
  i64 = () => {
    const o = this.at(8);
    return this.d.getInt32(o + 4, true) * 4294967296 + this.d.getUint32(o, true);
  };
  /** n bytes, a view of the frame. */
  bytes = (n: number) => this.b.subarray(this.at(n), this.o);
  str = (n: number) => decoder.decode(this.bytes(n));
  nbytes = (): Bytes => {
    const n = this.i32();
    return n === -1 ? null : this.bytes(n);
  };
}

/** A decoded kind 2 frame. */
export interface BinaryAck {
  id: number;
  err?: SamsaError;
  results?: Array<{ partition: number; offset: number }>;
}

export function parseAck(b: Uint8Array): BinaryAck {
  const r = new Reader(b);
  const id = r.u32();
  const code = r.u16();
  if (code) return { id, err: new SamsaError(CODES[code] ?? "internal", r.str(r.u16())) };
  const results = [];
  for (let n = r.u32(); n > 0; n--) results.push({ partition: r.i32(), offset: r.i64() });
  return { id, results };
}

/** A record of a kind 3 frame, in the shape of a JSON delivery's. */
export interface BinaryRecord {
  partition: number;
  offset: number;
  timestamp: number;
  key: Bytes;
  value: Bytes;
  encoding: "binary";
  headers?: Array<{ key: string; value: Bytes }>;
}

/**
 * Decodes a kind 3 frame. Keys, values and header values are views of
 * the frame's buffer (each frame has its own).
 */
export function parseRecords(b: Uint8Array): { sub: string; records: BinaryRecord[] } {
  const r = new Reader(b);
  const sub = r.str(r.u16());
  const records: BinaryRecord[] = [];
  for (let n = r.u32(); n > 0; n--) {
    const rec: BinaryRecord = {
      partition: r.i32(),
      offset: r.i64(),
      timestamp: r.i64(),
      key: r.nbytes(),
      value: r.nbytes(),
      encoding: "binary",
    };
    const nh = r.u16();
    if (nh) {
      rec.headers = [];
      for (let i = 0; i < nh; i++) rec.headers.push({ key: r.str(r.u16()), value: r.nbytes() });
    }
    records.push(rec);
  }
  return { sub, records };
}
