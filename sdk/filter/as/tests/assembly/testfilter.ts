// The SDK's test module: a filter whose decisions are driven by the record
// values, plus checks of the pure codec exported as functions (0 = pass).
import {
  Batch, Decision, Header, Record, Writer, bytes, decodeBatch, encodeBatch, drop, fail, handle, keep,
  log, params, reject, rewrite, route, routeRewrite,
} from "../../assembly/index";
export { samsa_abi_version, samsa_alloc, samsa_init, samsa_filter } from "../../assembly/index";

let batches = 0;

function init(p: string): string | null {
  if (p == "bad") return "bad params";
  return null;
}

function filter(b: Batch): Decision[] | null {
  batches++;
  const ds = new Array<Decision>(0);
  for (let i = 0; i < b.records.length; i++) {
    const r = b.records[i];
    const v = r.valueString();
    if (v == "keep") ds.push(keep());
    else if (v == "drop") ds.push(drop());
    else if (v == "rewrite") {
      const hs = r.headers.slice(0);
      hs.push(new Header("params", bytes(params())));
      ds.push(rewrite(r.key, bytes(v.toUpperCase() + " é"), hs));
    } else if (v == "route") ds.push(route([b.topic + ".a", "b"]));
    else if (v == "routerw") ds.push(routeRewrite(["c"], null, bytes("x"), [new Header("h", null)]));
    else if (v == "reject") ds.push(reject("no: offset " + r.offset.toString() + " of " + b.topic + "/" + b.partition.toString()));
    else if (v == "fail") return fail("failing on purpose");
    else if (v == "short") return ds;
    else if (v == "throw") throw new Error("thrown on purpose");
    else ds.push(keep());
  }
  log("testfilter: batch " + batches.toString() + ", " + b.records.length.toString() + " records");
  return ds;
}

handle(filter, init);

function eqBytes(a: Uint8Array | null, b: Uint8Array | null): bool {
  if (a == null || b == null) return a == null && b == null;
  if (a.length != b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] != b[i]) return false;
  return true;
}

/** encodeBatch then decodeBatch gives back the batch; truncations fail cleanly. */
export function test_codec_roundtrip(): i32 {
  const b = new Batch();
  b.topic = "tópico";
  b.partition = 7;
  const r0 = new Record();
  r0.offset = 1 << 40;
  r0.timestamp = -5;
  r0.key = null;
  r0.value = bytes("v0");
  r0.headers = [new Header("h", null), new Header("", new Uint8Array(0))];
  const r1 = new Record();
  r1.key = new Uint8Array(0);
  b.records = [r0, r1];
  const w = new Writer(16);
  encodeBatch(w, b);
  const d = decodeBatch(w.ptr, w.len);
  if (d.error != null) return 1;
  const g = d.batch!;
  if (g.topic != b.topic || g.partition != 7 || g.records.length != 2) return 2;
  if (g.records[0].offset != 1 << 40 || g.records[0].timestamp != -5) return 3;
  if (g.records[0].key != null || !eqBytes(g.records[0].value, bytes("v0"))) return 4;
  if (g.records[0].headers.length != 2 || g.records[0].headers[0].value != null) return 5;
  if (g.records[0].headers[1].value == null || g.records[0].headers[1].value!.length != 0) return 6;
  if (g.records[1].key == null || g.records[1].value != null) return 7;
  for (let n = 0; n < w.len; n++) {
    if (decodeBatch(w.ptr, n).error == null) return 100 + n;
  }
  return 0;
}
