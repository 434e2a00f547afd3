// The browser bundle stays small: npm run size fails above 10 KB gzipped.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

test("dist/samsa.js is at most 10 KB minified+gzipped", () => {
  const out = execFileSync(process.execPath, [join(root, "scripts/size.mjs")], { encoding: "utf8" });
  const m = /(\d+) bytes gzipped/.exec(out);
  assert.ok(m, out);
  assert.ok(+m[1] <= 10 * 1024, out);
});

test("the bundle is one ESM file with no static imports; ws is only a dynamic import", () => {
  const src = readFileSync(join(root, "dist/samsa.js"), "utf8");
  assert.doesNotMatch(src, /(^|[;}\s])import\s*[{*\w]/, "no static import");
  assert.doesNotMatch(src, /require\(/);
  assert.match(src, /import\("ws"\)/);
  assert.match(src, /export\s*\{/);
  const dts = readFileSync(join(root, "dist/index.d.ts"), "utf8");
  assert.match(dts, /connect/);
});
