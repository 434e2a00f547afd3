import { test } from "node:test";
import assert from "node:assert/strict";
import { instantiate, listModule } from "./abi.mjs";

const file = new URL("../build/testfilter.wasm", import.meta.url).pathname;

test("module shape: a WASI reactor with the four exports", () => {
  const { exports, imports } = listModule(file);
  const names = exports.map((e) => e.name);
  for (const n of ["memory", "samsa_abi_version", "samsa_alloc", "samsa_init", "samsa_filter", "_initialize"]) {
    assert.ok(names.includes(n), `missing export ${n}: ${names}`);
  }
  assert.ok(!names.includes("_start"));
  assert.equal(exports.find((e) => e.name === "memory").kind, "memory");
  for (const i of imports) assert.equal(i.module, "wasi_snapshot_preview1", `import ${i.module}.${i.name}`);
});

test("pure codec round trip", () => {
  const f = instantiate(file);
  assert.equal(f.exports.test_codec_roundtrip(), 0);
});

test("abi version, init, every action", () => {
  const f = instantiate(file, '{"x":1}');
  assert.equal(f.abi, 1);
  assert.equal(f.init, 0);
  const ds = f.filter({
    topic: "orders", partition: 3, records: [
      { value: "keep" }, { value: "drop" },
      { key: "k", value: "rewrite", headers: [["a", "1"], ["n", null]] },
      { value: "route" }, { value: "routerw" }, { offset: 42, value: "reject" }, { value: null },
    ],
  });
  assert.deepEqual(ds, [
    { action: "keep" }, { action: "drop" },
    { action: "rewrite", key: "k", value: "REWRITE é", headers: [["a", "1"], ["n", null], ["params", '{"x":1}']] },
    { action: "route", topics: ["orders.a", "b"] },
    { action: "route", topics: ["c"], key: null, value: "x", headers: [["h", null]] },
    { action: "reject", message: "no: offset 42 of orders/3" },
    { action: "keep" },
  ]);
  assert.deepEqual(f.stdout, ["testfilter: batch 1, 7 records"]);
  // many batches on one instance, large ones too
  for (let n = 1; n <= 5; n++) {
    const records = Array.from({ length: n * 1000 }, (_, i) => ({ value: i % 2 ? "drop" : "x".repeat(100) }));
    const out = f.filter({ topic: "t", records });
    assert.equal(out.length, records.length);
    assert.equal(out[1].action, "drop");
  }
  assert.deepEqual(f.filter({ topic: "t", records: [] }), []);
});

test("failures: init error, fail(), wrong count, throw", () => {
  const bad = instantiate(file, "bad");
  assert.notEqual(bad.init, 0);
  assert.match(bad.stderr.join("\n"), /bad params/);

  const f = instantiate(file);
  assert.equal(f.filter({ topic: "t", records: [{ value: "keep" }, { value: "fail" }] }), null);
  assert.match(f.stderr.join("\n"), /failing on purpose/);
  assert.equal(f.filter({ topic: "t", records: [{ value: "keep" }, { value: "short" }] }), null);
  assert.match(f.stderr.join("\n"), /1 decisions for 2 records/);
  assert.throws(() => f.filter({ topic: "t", records: [{ value: "throw" }] }), WebAssembly.RuntimeError);
  assert.match(f.stderr.join("\n"), /abort: thrown on purpose/);
});

test("garbage input is a negative result, not a trap", () => {
  const f = instantiate(file);
  const x = f.exports;
  for (const junk of [[], [1, 0, 0], [2, 0, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 255, 255, 255, 255]]) {
    const p = x.samsa_alloc(junk.length);
    new Uint8Array(x.memory.buffer).set(junk, p);
    assert.ok(x.samsa_filter(p, junk.length) < 0n, `input ${junk}`);
  }
  // a pointer not from samsa_alloc
  assert.ok(x.samsa_filter(8, 4) < 0n);
  // an allocation that cannot be: 0, not a trap
  assert.equal(x.samsa_alloc(0x7fffffff), 0);
  assert.equal(x.samsa_alloc(-1), 0);
});
