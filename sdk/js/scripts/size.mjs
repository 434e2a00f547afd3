// Prints the minified+gzipped size of dist/samsa.js; fails above 10 KB.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const LIMIT = 10 * 1024;
const file = join(dirname(fileURLToPath(import.meta.url)), "../dist/samsa.js");
const raw = readFileSync(file);
const gz = gzipSync(raw, { level: 9 }).length;
console.log(`dist/samsa.js: ${raw.length} bytes minified, ${gz} bytes gzipped (limit ${LIMIT})`);
if (gz > LIMIT) {
  console.error(`size: ${gz} bytes gzipped exceeds ${LIMIT}`);
  process.exit(1);
}
