// A small JSON validator (RFC 8259): the whole input must be one JSON value,
// with optional whitespace around it, in valid UTF-8. Iterative, so deep
// nesting cannot exhaust the stack.

const OBJ: u8 = 1;
const ARR: u8 = 2;

// parser states
const VALUE = 0; // a value is expected
const KEY = 1; // an object key is expected
const AFTER = 2; // a value just ended

function isWS(c: u8): bool {
  return c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d;
}

function isDigit(c: u8): bool {
  return c >= 0x30 && c <= 0x39;
}

function isHex(c: u8): bool {
  return isDigit(c) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
}

function describe(c: u8): string {
  if (c >= 0x21 && c < 0x7f) return "'" + String.fromCharCode(c) + "'";
  return "byte 0x" + (c < 16 ? "0" : "") + c.toString(16);
}

/** Returns null if the len bytes at ptr are valid UTF-8, else why not. */
export function checkUTF8(ptr: usize, len: usize): string | null {
  let i: usize = 0;
  while (i < len) {
    const c = load<u8>(ptr + i);
    if (c < 0x80) {
      i++;
      continue;
    }
    let n: usize = 0;
    let min: u32 = 0;
    let cp: u32 = 0;
    if ((c & 0xe0) == 0xc0) { n = 1; min = 0x80; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { n = 2; min = 0x800; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { n = 3; min = 0x10000; cp = c & 0x07; }
    else return "invalid UTF-8 at byte " + i.toString();
    if (i + n >= len) return "truncated UTF-8 sequence at byte " + i.toString();
    for (let k: usize = 1; k <= n; k++) {
      const cc = load<u8>(ptr + i + k);
      if ((cc & 0xc0) != 0x80) return "invalid UTF-8 at byte " + i.toString();
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return "invalid UTF-8 at byte " + i.toString();
    i += n + 1;
  }
  return null;
}

/** Returns null if the len bytes at ptr are one valid JSON document, else why not. */
export function validateJSON(ptr: usize, len: usize): string | null {
  const u = checkUTF8(ptr, len);
  if (u != null) return u;
  const stack = new Array<u8>(0);
  let state = VALUE;
  let i: usize = 0;
  while (true) {
    while (i < len && isWS(load<u8>(ptr + i))) i++;
    if (state == AFTER && stack.length == 0) {
      if (i == len) return null;
      return "unexpected " + describe(load<u8>(ptr + i)) + " after the JSON value at byte " + i.toString();
    }
    if (i == len) return len == 0 ? "empty value" : "unexpected end of input";
    const c = load<u8>(ptr + i);

    if (state == AFTER) {
      const top = stack[stack.length - 1];
      if (c == 0x2c) { // ,
        i++;
        state = top == OBJ ? KEY : VALUE;
      } else if ((top == OBJ && c == 0x7d) || (top == ARR && c == 0x5d)) {
        stack.pop();
        i++;
      } else {
        return "expected ',' or '" + (top == OBJ ? "}" : "]") + "' at byte " + i.toString() + ", found " + describe(c);
      }
      continue;
    }

    if (state == KEY) {
      if (c != 0x22) return "expected a string key at byte " + i.toString() + ", found " + describe(c);
      const e = scanString(ptr, len, i);
      if (e < 0) return stringError(i, e);
      i = <usize>e;
      while (i < len && isWS(load<u8>(ptr + i))) i++;
      if (i == len) return "unexpected end of input";
      if (load<u8>(ptr + i) != 0x3a) return "expected ':' at byte " + i.toString() + ", found " + describe(load<u8>(ptr + i));
      i++;
      state = VALUE;
      continue;
    }

    // state == VALUE
    if (c == 0x7b || c == 0x5b) { // { [
      i++;
      while (i < len && isWS(load<u8>(ptr + i))) i++;
      if (i < len && load<u8>(ptr + i) == (c == 0x7b ? 0x7d : 0x5d)) {
        i++; // empty {} or []
        state = AFTER;
      } else {
        stack.push(c == 0x7b ? OBJ : ARR);
        state = c == 0x7b ? KEY : VALUE;
      }
      continue;
    }
    if (c == 0x22) {
      const e = scanString(ptr, len, i);
      if (e < 0) return stringError(i, e);
      i = <usize>e;
    } else if (c == 0x2d || isDigit(c)) {
      const e = scanNumber(ptr, len, i);
      if (e < 0) return "invalid number at byte " + i.toString();
      i = <usize>e;
    } else if (c == 0x74 && matchWord(ptr, len, i, "true")) i += 4;
    else if (c == 0x66 && matchWord(ptr, len, i, "false")) i += 5;
    else if (c == 0x6e && matchWord(ptr, len, i, "null")) i += 4;
    else return "unexpected " + describe(c) + " at byte " + i.toString();
    state = AFTER;
  }
}

function matchWord(ptr: usize, len: usize, i: usize, w: string): bool {
  if (i + <usize>w.length > len) return false;
  for (let k = 0; k < w.length; k++) {
    if (load<u8>(ptr + i + k) != <u8>w.charCodeAt(k)) return false;
  }
  return true;
}

// scanString returns the index after the closing quote of the string that
// starts at i, or -1 (unterminated), -2 (bad escape), -3 (control character).
function scanString(ptr: usize, len: usize, i: usize): isize {
  i++;
  while (i < len) {
    const c = load<u8>(ptr + i);
    if (c == 0x22) return <isize>(i + 1);
    if (c < 0x20) return -3;
    if (c == 0x5c) {
      if (i + 1 >= len) return -1;
      const e = load<u8>(ptr + i + 1);
      if (e == 0x75) { // \uXXXX
        if (i + 6 > len) return -2;
        for (let k: usize = 2; k < 6; k++) if (!isHex(load<u8>(ptr + i + k))) return -2;
        i += 6;
        continue;
      }
      if (e != 0x22 && e != 0x5c && e != 0x2f && e != 0x62 && e != 0x66 && e != 0x6e && e != 0x72 && e != 0x74) return -2;
      i += 2;
      continue;
    }
    i++;
  }
  return -1;
}

function stringError(start: usize, code: isize): string {
  if (code == -1) return "unterminated string starting at byte " + start.toString();
  if (code == -2) return "invalid escape in the string starting at byte " + start.toString();
  return "control character in the string starting at byte " + start.toString();
}

// scanNumber returns the index after the number that starts at i, or -1.
function scanNumber(ptr: usize, len: usize, i: usize): isize {
  if (load<u8>(ptr + i) == 0x2d) i++;
  if (i >= len) return -1;
  let c = load<u8>(ptr + i);
  if (c == 0x30) i++;
  else if (isDigit(c)) { while (i < len && isDigit(load<u8>(ptr + i))) i++; }
  else return -1;
  if (i < len && load<u8>(ptr + i) == 0x2e) { // .
    i++;
    if (i >= len || !isDigit(load<u8>(ptr + i))) return -1;
    while (i < len && isDigit(load<u8>(ptr + i))) i++;
  }
  if (i < len && (load<u8>(ptr + i) | 0x20) == 0x65) { // e E
    i++;
    if (i < len && (load<u8>(ptr + i) == 0x2b || load<u8>(ptr + i) == 0x2d)) i++;
    if (i >= len || !isDigit(load<u8>(ptr + i))) return -1;
    while (i < len && isDigit(load<u8>(ptr + i))) i++;
  }
  // a number must not run into a letter or digit ("01", "1x")
  if (i < len) {
    c = load<u8>(ptr + i);
    if (isDigit(c) || (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a) return -1;
  }
  return <isize>i;
}

/** validateJSON on the bytes of a Uint8Array (null is not JSON). */
export function validateBytes(b: Uint8Array | null): string | null {
  if (b == null) return "null value";
  return validateJSON(b.dataStart, <usize>b.byteLength);
}
