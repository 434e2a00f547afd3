// Builds dist/samsa.js (one minified ESM file; `ws` stays an external,
// dynamic import used only where there is no global WebSocket) and the
// type declarations (dist/index.d.ts and the files it references).
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
rmSync(join(root, "dist"), { recursive: true, force: true });
await build({
  entryPoints: [join(root, "src/index.ts")],
  outfile: join(root, "dist/samsa.js"),
  bundle: true,
  format: "esm",
  platform: "neutral",
  target: "es2020",
  minify: true,
  sourcemap: false,
  external: ["ws"],
  legalComments: "none",
  logLevel: "warning",
});
try {
  execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.json")], {
    stdio: "inherit",
  });
} catch {
  process.exit(1);
}
