// @samsa/filter-as: the AssemblyScript SDK for samsa Wasm filters (guest ABI
// version 1, wasm/ABI.md in the samsa repository). See README.md.
//
//   import { Batch, Decision, handle, keep, drop, log } from "@samsa/filter-as";
//   export { samsa_abi_version, samsa_alloc, samsa_init, samsa_filter } from "@samsa/filter-as";
//
//   handle((b: Batch): Decision[] | null => {
//     const ds = new Array<Decision>(0);
//     for (let i = 0; i < b.records.length; i++) ds.push(b.records[i].value == null ? drop() : keep());
//     return ds;
//   });

export * from "./types";
export { Reader, Writer, DecodedBatch, decodeBatch, encodeBatch, encodeDecisions, checkDecisions } from "./codec";

import { ABI_VERSION, Batch, Decision } from "./types";
import { Writer, decodeBatch, encodeDecisions, checkDecisions } from "./codec";
import { writeLine } from "./wasi";

/** A filter: one decision per record, in order; null fails the whole batch (say why with fail()). */
export type FilterFn = (batch: Batch) => Decision[] | null;
/** Checks or parses the binding's parameters (UTF-8 JSON, "" for none) once per instance; returns an error message or null. */
export type InitFn = (params: string) => string | null;

let filterFn: FilterFn | null = null;
let initFn: InitFn | null = null;
let paramsText: string = "";

/**
 * Registers the module's filter, and optionally a function that checks its
 * parameters once per instance. Call it at the top level of the entry file
 * (it runs from _initialize). Functions must not capture local variables
 * (AssemblyScript has no closures); keep state in module-level variables.
 */
export function handle(filter: FilterFn, init: InitFn | null = null): void {
  filterFn = filter;
  initFn = init;
}

/** The binding's parameters (UTF-8 JSON text, "" for none), set before init runs. */
export function params(): string {
  return paramsText;
}

/** Writes a line to stdout (the filter's log topic, stream stdout). */
export function log(msg: string): void {
  writeLine(1, msg);
}

/** Writes a line to stderr (the filter's log topic, stream stderr). */
export function logError(msg: string): void {
  writeLine(2, msg);
}

/** Writes msg to stderr and returns null: `return fail("why")` fails the batch. */
export function fail(msg: string): Decision[] | null {
  writeLine(2, msg);
  return null;
}

// The ABI exports. An entry file re-exports them:
//   export { samsa_abi_version, samsa_alloc, samsa_init, samsa_filter } from "@samsa/filter-as";

// The buffer of the last samsa_alloc and the output of the last
// samsa_filter, kept in globals so that the GC keeps them alive.
let inBuf: ArrayBuffer | null = null;
const out = new Writer(4096);

export function samsa_abi_version(): u32 {
  return ABI_VERSION;
}

export function samsa_alloc(size: i32): usize {
  // Past the runtime's largest block the allocator would abort: say "out
  // of memory" the ABI's way instead.
  if (size < 0 || size > (1 << 30) - 64) return 0;
  const b = new ArrayBuffer(size);
  inBuf = b;
  return changetype<usize>(b);
}

/** Checks that [ptr, ptr+len) lies in the buffer of the last samsa_alloc. */
function checkInput(ptr: usize, len: usize): bool {
  if (len == 0) return true;
  const b = inBuf;
  if (b == null) return false;
  const base = changetype<usize>(b);
  return ptr >= base && ptr - base + len <= <usize>b.byteLength;
}

export function samsa_init(ptr: usize, len: usize): i32 {
  if (!checkInput(ptr, len)) {
    writeLine(2, "samsa filter: params are not inside the buffer from samsa_alloc");
    return 1;
  }
  paramsText = len > 0 ? String.UTF8.decodeUnsafe(ptr, len) : "";
  inBuf = null;
  if (filterFn == null) {
    writeLine(2, "samsa filter: no filter registered (call handle() at the top level of the entry file)");
    return 1;
  }
  const init = initFn;
  if (init != null) {
    const err = init(paramsText);
    if (err != null) {
      writeLine(2, "samsa filter: init: " + err);
      return 1;
    }
  }
  return 0;
}

export function samsa_filter(ptr: usize, len: usize): i64 {
  if (!checkInput(ptr, len)) {
    writeLine(2, "samsa filter: input is not inside the buffer from samsa_alloc");
    return -1;
  }
  const f = filterFn;
  if (f == null) {
    writeLine(2, "samsa filter: no filter registered");
    return -1;
  }
  const d = decodeBatch(ptr, len);
  inBuf = null;
  if (d.error != null) {
    writeLine(2, "samsa filter: " + d.error!);
    return -1;
  }
  const b = d.batch!;
  const ds = f(b);
  if (ds == null) return -1;
  const err = checkDecisions(ds, b.records.length);
  if (err != null) {
    writeLine(2, "samsa filter: " + err);
    return -1;
  }
  out.reset();
  encodeDecisions(out, ds);
  return <i64>((<u64>out.ptr << 32) | <u64>out.len);
}
