// The little of WASI preview 1 a filter needs: writing to stdout and stderr
// (the broker puts these lines in the filter's log topic), random numbers,
// and the abort, trace and seed hooks of the AssemblyScript runtime, so that
// a module imports nothing but wasi_snapshot_preview1. asconfig.json points
// the runtime's hooks here with "use".

// @ts-ignore: decorator
@external("wasi_snapshot_preview1", "fd_write")
declare function fd_write(fd: u32, iovs: usize, iovsLen: usize, nwritten: usize): u32;

// @ts-ignore: decorator
@external("wasi_snapshot_preview1", "random_get")
declare function random_get(buf: usize, len: usize): u32;

const iov = memory.data(16, 16);

/** Writes len bytes at ptr to file descriptor fd (1 stdout, 2 stderr). */
export function writeRaw(fd: u32, ptr: usize, len: usize): void {
  while (len > 0) {
    store<usize>(iov, ptr);
    store<usize>(iov + sizeof<usize>(), len);
    const nw = iov + 2 * sizeof<usize>();
    if (fd_write(fd, iov, 1, nw) != 0) return;
    const n = load<usize>(nw);
    if (n == 0) return;
    ptr += n;
    len -= n;
  }
}

/** Writes s and a newline to fd. */
export function writeLine(fd: u32, s: string): void {
  const b = String.UTF8.encode(s + "\n");
  writeRaw(fd, changetype<usize>(b), b.byteLength);
}

/** Replaces the runtime's abort (a failed assertion, a bounds check, a `throw`): says why on stderr, then traps. */
export function samsaAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  let s = "abort: " + (message != null ? message : "");
  if (fileName != null) s += " at " + fileName + ":" + line.toString() + ":" + column.toString();
  writeLine(2, s);
  unreachable();
}

/** Replaces the runtime's trace(): writes the message and values to stderr. */
export function samsaTrace(message: string, n: i32 = 0, a0: f64 = 0, a1: f64 = 0, a2: f64 = 0, a3: f64 = 0, a4: f64 = 0): void {
  let s = "trace: " + message;
  if (n > 0) s += " " + a0.toString();
  if (n > 1) s += ", " + a1.toString();
  if (n > 2) s += ", " + a2.toString();
  if (n > 3) s += ", " + a3.toString();
  if (n > 4) s += ", " + a4.toString();
  writeLine(2, s);
}

/** Replaces the runtime's seed (for Math.random) with WASI random_get. */
export function samsaSeed(): f64 {
  random_get(iov, 8);
  return <f64>load<u64>(iov);
}
