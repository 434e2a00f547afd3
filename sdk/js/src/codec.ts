// Values, keys and headers as samsa.v1 carries them in JSON (PROTOCOL.md §3).

export type Encoding = "json" | "text" | "base64";

/** A value to produce: JSON values, text, or bytes. */
export type Value = unknown;

/** Headers to produce: an object, or [key, value] pairs (keeps order and duplicates). */
export type HeadersInit =
  | Record<string, string | Uint8Array | null>
  | Array<[string, string | Uint8Array | null]>;

export interface Header {
  key: string;
  value: string | Uint8Array | null;
}

export function toBase64(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, b.subarray(i, i + 0x8000) as unknown as number[]);
  }
  return btoa(s);
}

export function fromBase64(s: string): Uint8Array {
  const bin = atob(s);
  const b = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) b[i] = bin.charCodeAt(i);
  return b;
}

const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;

/**
 * The JSON form of a value to produce: [value, encoding]. Strings are text
 * unless jsonStrings; bytes are base64; everything else (objects, arrays,
 * numbers, booleans, null) is JSON. undefined is a null value.
 */
export function encodeValue(v: Value, jsonStrings: boolean): [unknown, Encoding] {
  if (v === undefined || v === null) return [null, "json"];
  if (typeof v === "string") return [v, jsonStrings ? "json" : "text"];
  if (isBytes(v)) return [toBase64(v), "base64"];
  return [v, "json"];
}

/** Decodes a delivered value by its encoding: json → the value, text → string, base64 → bytes. */
export function decodeValue(v: unknown, enc: string | undefined): unknown {
  if (v === null || v === undefined) return null;
  if (enc === "base64" && typeof v === "string") return fromBase64(v);
  return v;
}

export function encodeHeaders(h: HeadersInit): Array<{ key: string; value: string | null; encoding?: string }> {
  const pairs = Array.isArray(h) ? h : Object.entries(h);
  return pairs.map(([key, value]) =>
    isBytes(value) ? { key, value: toBase64(value), encoding: "base64" } : { key, value: value ?? null },
  );
}

export function decodeHeaders(h: unknown): Header[] {
  if (!Array.isArray(h)) return [];
  return h.map((x: { key: string; value: string | null; encoding?: string }) => ({
    key: x.key,
    value: decodeValue(x.value, x.encoding) as string | Uint8Array | null,
  }));
}
