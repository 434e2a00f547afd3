import { test } from "node:test";
import assert from "node:assert/strict";
import { instantiate, listModule } from "@samsa/filter-as/tests/abi.mjs";

const build = (f) => new URL(`../build/${f}`, import.meta.url).pathname;

test("JSON validator cases (AssemblyScript unit test)", () => {
  const t = instantiate(build("json_test.wasm"));
  const failures = t.exports.run_cases();
  assert.equal(failures, 0, t.stderr.join("\n"));
});

test("validate.wasm is a filter module", () => {
  const { exports, imports } = listModule(build("validate.wasm"));
  const names = exports.map((e) => e.name);
  for (const n of ["memory", "samsa_abi_version", "samsa_alloc", "samsa_init", "samsa_filter"]) assert.ok(names.includes(n), n);
  assert.ok(!names.includes("_start"));
  for (const i of imports) assert.equal(i.module, "wasi_snapshot_preview1");
});

test("keeps valid JSON, rejects the rest saying which offset and why", () => {
  const f = instantiate(build("validate.wasm"));
  assert.equal(f.abi, 1);
  assert.equal(f.init, 0);
  const ds = f.filter({
    topic: "in", records: [
      { offset: 10, value: '{"a":1}' },
      { offset: 11, value: "[1,2" },
      { offset: 12, value: "not json" },
      { offset: 13, value: null },
      { offset: 14, value: new Uint8Array([0x22, 0xff, 0x22]) },
      { offset: 15, value: " 42 " },
    ],
  });
  assert.deepEqual(ds, [
    { action: "keep" },
    { action: "reject", message: "offset 11: value is not valid JSON: unexpected end of input" },
    { action: "reject", message: "offset 12: value is not valid JSON: unexpected 'n' at byte 0" },
    { action: "reject", message: "offset 13: value is not valid JSON: null value" },
    { action: "reject", message: "offset 14: value is not valid JSON: invalid UTF-8 at byte 1" },
    { action: "keep" },
  ]);
  assert.deepEqual(f.stdout, ["validate: 6 records, 4 rejected"]);
  assert.deepEqual(f.filter({ topic: "in", records: [{ value: "{}" }, { value: "[]" }] }), [{ action: "keep" }, { action: "keep" }]);
});
