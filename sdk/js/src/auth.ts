// Authentication (PROTOCOL.md §9): nkey seeds, Ed25519 signatures of the
// hello nonce through WebCrypto (browsers and Node >= 20 alike), and the
// auth op built from the application's credentials.
import { fromBase64, toBase64 } from "./codec.js";
import { AuthError } from "./errors.js";

/**
 * Credentials for a broker with `[auth] enabled = true`:
 * - `{ jwt, seed }`: a user JWT (`samsa token issue`) and the user's nkey
 *   seed (`SU...`, `samsa key gen`), which signs the connection's nonce;
 * - `{ seed }`: a static user of broker.toml (`[[auth.users]]` with an
 *   `nkey`), which has no JWT;
 * - `{ bearer }`: a bearer JWT (`samsa token issue --bearer`), for pages
 *   that must never hold a seed.
 */
export type Credentials =
  | { jwt: string; seed: string; bearer?: undefined }
  | { seed: string; jwt?: undefined; bearer?: undefined }
  | { bearer: string; jwt?: undefined; seed?: undefined };

/**
 * Credentials, or a function returning them, called on every (re)connect
 * and before the token expires, so that a page can fetch a fresh
 * short-lived bearer token from its backend.
 */
export type AuthOption = Credentials | (() => Credentials | Promise<Credentials>);

/** Who the connection is authenticated as (the `authenticated` reply). */
export interface Identity {
  /** The user's public key (`U...`), or a static user's name. */
  user: string;
  /** When the token expires (Unix ms); absent when it does not. */
  expires?: number;
  /** "cookie" when the broker's auth cookie authenticated the connection. */
  via?: string;
}

const B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SEED = 18 << 3; // nkeys' seed prefix byte: base32 "S..."
const USER = 20 << 3; // the user key type: "U..."
const PKCS8_ED25519 = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

const bad = (why: string) => new AuthError("unauthorized", `invalid nkey seed: ${why}`);

/** RFC 4648 base32 without padding. */
function base32Decode(s: string): Uint8Array {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const ch of s) {
    const v = B32.indexOf(ch);
    if (v < 0) throw bad("not base32");
    acc = ((acc << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
    }
  }
  return Uint8Array.from(out);
}

function base32Encode(b: Uint8Array): string {
  let s = "";
  let acc = 0;
  let bits = 0;
  for (const x of b) {
    acc = ((acc << 8) | x) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      s += B32[(acc >> bits) & 31];
    }
  }
  return bits ? s + B32[(acc << (5 - bits)) & 31] : s;
}

/** CRC-16/XMODEM (polynomial 0x1021, initial 0), as nkeys checksums. */
function crc16(b: Uint8Array): number {
  let crc = 0;
  for (const x of b) {
    crc ^= x << 8;
    for (let i = 0; i < 8; i++) crc = (crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1) & 0xffff;
  }
  return crc;
}

/**
 * Decodes a user nkey seed ("SU...") to its 32-byte Ed25519 private seed.
 * Throws AuthError on a bad checksum, a non-seed, or a seed of another
 * key type (an issuer's "SA..." or "SO..." seed must never sign in).
 */
export function decodeSeed(seed: string): Uint8Array {
  const raw = base32Decode(seed.trim());
  const n = raw.length;
  if (n !== 36 || crc16(raw.subarray(0, n - 2)) !== (raw[n - 2] | (raw[n - 1] << 8))) throw bad("bad length or checksum");
  if ((raw[0] & 0xf8) !== SEED) throw bad("not a seed (S...)");
  if ((((raw[0] & 7) << 5) | (raw[1] >> 3)) !== USER) throw bad("not a user seed (SU...)");
  return raw.slice(2, 34);
}

async function importSeed(key: Uint8Array, extractable: boolean): Promise<CryptoKey> {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) {
    throw new AuthError("unauthorized", "nonce signing needs WebCrypto (crypto.subtle: https or localhost pages, Node >= 20); or use a bearer token");
  }
  const der = new Uint8Array(48);
  der.set(PKCS8_ED25519);
  der.set(key, 16);
  try {
    return await subtle.importKey("pkcs8", der, { name: "Ed25519" }, extractable, ["sign"]);
  } catch (e) {
    throw new AuthError("unauthorized", `this runtime's WebCrypto cannot sign with Ed25519 (${(e as Error)?.message}); use a bearer token`, e);
  }
}

function sign(k: CryptoKey, data: Uint8Array): Promise<ArrayBuffer> {
  return globalThis.crypto.subtle.sign({ name: "Ed25519" }, k, data as Uint8Array<ArrayBuffer>);
}

function b64url(s: string): Uint8Array {
  s = s.replace(/-/g, "+").replace(/_/g, "/");
  return fromBase64(s + "===".slice((s.length + 3) % 4));
}

async function publicKeyOf(k: CryptoKey): Promise<string> {
  const jwk = await globalThis.crypto.subtle.exportKey("jwk", k);
  const pub = b64url(jwk.x ?? "");
  const raw = new Uint8Array(35);
  raw[0] = USER;
  raw.set(pub, 1);
  const c = crc16(raw.subarray(0, 33));
  raw[33] = c & 0xff;
  raw[34] = c >> 8;
  return base32Encode(raw);
}

/** The public key ("U...") of a user nkey seed ("SU..."), as `samsa key pub` prints it. */
export async function nkeyPublicKey(seed: string): Promise<string> {
  return publicKeyOf(await importSeed(decodeSeed(seed), true));
}

/** The auth op for credentials c on a connection whose hello nonce is nonce. @internal */
export async function authOp(c: Credentials, nonce: string): Promise<Record<string, unknown>> {
  if (c && typeof c.bearer === "string") return { op: "auth", bearer: c.bearer };
  if (c && typeof c.seed === "string") {
    const jwt = c.jwt;
    const key = await importSeed(decodeSeed(c.seed), jwt === undefined);
    const sig = toBase64(new Uint8Array(await sign(key, fromBase64(nonce))));
    if (typeof jwt === "string") return { op: "auth", jwt, sig };
    return { op: "auth", nkey: await publicKeyOf(key), sig };
  }
  if (typeof (c as { jwt?: unknown })?.jwt === "string") {
    throw new AuthError("unauthorized", "auth: a user JWT needs the user's seed to sign the nonce ({jwt, seed}); a page without a seed uses a bearer token ({bearer})");
  }
  throw new AuthError("unauthorized", "auth: credentials must be {jwt, seed}, {seed} or {bearer}");
}

/**
 * How long until a token should be refreshed: 90% of its remaining
 * lifetime. The lifetime is also bounded by the JWT's own exp - iat, so
 * that a client clock behind the broker's does not refresh too late.
 * @internal
 */
export function refreshDelay(c: Credentials | undefined, expires: number, now: number): number {
  let left = expires - now;
  const tok = c && (c.bearer ?? c.jwt);
  if (tok) {
    try {
      const claims = JSON.parse(new TextDecoder().decode(b64url(tok.split(".")[1])));
      const life = (claims.exp - claims.iat) * 1000;
      if (life > 0 && (left > life || left <= 0)) left = life;
    } catch {
      // not a JWT we can read: go by expires alone
    }
  }
  return Math.max(250, left * 0.9);
}
