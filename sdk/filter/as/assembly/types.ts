// Records, batches and decisions of the samsa filter ABI, version 1
// (wasm/ABI.md). Pure AssemblyScript: no WASI, no imports.

/** The ABI version this SDK implements. */
export const ABI_VERSION: u32 = 1;

/** One record header. A null value is a null header value. */
export class Header {
  constructor(public key: string, public value: Uint8Array | null = null) {}
}

/** One record of a batch. A null key or value is a null key or value. */
export class Record {
  /** The offset in the source partition; on the produce path the position in the batch. */
  offset: i64 = 0;
  /** Milliseconds since the Unix epoch. */
  timestamp: i64 = 0;
  key: Uint8Array | null = null;
  value: Uint8Array | null = null;
  headers: Header[] = [];

  /** The value as UTF-8 text ("" for a null value). */
  valueString(): string {
    const v = this.value;
    return v == null ? "" : String.UTF8.decode(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength));
  }

  /** The key as UTF-8 text ("" for a null key). */
  keyString(): string {
    const k = this.key;
    return k == null ? "" : String.UTF8.decode(k.buffer.slice(k.byteOffset, k.byteOffset + k.byteLength));
  }

  /** The first header named key, or null. */
  header(key: string): Header | null {
    for (let i = 0; i < this.headers.length; i++) {
      if (this.headers[i].key == key) return this.headers[i];
    }
    return null;
  }
}

/** The records of one call, all from one partition of one topic. */
export class Batch {
  topic: string = "";
  partition: i32 = 0;
  records: Record[] = [];
}

/** What happens to a record. route and reject are allowed on the produce path only. */
export enum Action {
  Keep = 0,
  Drop = 1,
  Rewrite = 2,
  Route = 3,
  Reject = 4,
}

/** The decision for one record. Make one with keep(), drop(), rewrite(), route(), routeRewrite() or reject(). */
export class Decision {
  action: Action = Action.Keep;
  /** Destinations of a route. */
  topics: string[] = [];
  /** Whether a route also rewrites; always true for a rewrite. */
  hasRewrite: bool = false;
  /** Replace the record's key, value and headers (offset and timestamp are kept). */
  key: Uint8Array | null = null;
  value: Uint8Array | null = null;
  headers: Header[] = [];
  /** The reason of a reject; the producer sees it. */
  message: string = "";
}

/** Pass the record on unchanged. */
export function keep(): Decision {
  return new Decision();
}

/** Remove the record. */
export function drop(): Decision {
  const d = new Decision();
  d.action = Action.Drop;
  return d;
}

/** Pass the record on with this key, value and headers instead of its own (null is null). */
export function rewrite(key: Uint8Array | null, value: Uint8Array | null, headers: Header[] = []): Decision {
  const d = new Decision();
  d.action = Action.Rewrite;
  d.hasRewrite = true;
  d.key = key;
  d.value = value;
  d.headers = headers;
  return d;
}

/** Send the record to each topic instead of the source topic (list the source topic to keep it there too). Produce path only. */
export function route(topics: string[]): Decision {
  const d = new Decision();
  d.action = Action.Route;
  d.topics = topics;
  return d;
}

/** route() with the record rewritten as by rewrite(). */
export function routeRewrite(topics: string[], key: Uint8Array | null, value: Uint8Array | null, headers: Header[] = []): Decision {
  const d = rewrite(key, value, headers);
  d.action = Action.Route;
  d.topics = topics;
  return d;
}

/** Fail the whole produce request for the partition with this message. Produce path only. */
export function reject(message: string): Decision {
  const d = new Decision();
  d.action = Action.Reject;
  d.message = message;
  return d;
}

/** The UTF-8 bytes of s, e.g. for rewrite(). */
export function bytes(s: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(s));
}
