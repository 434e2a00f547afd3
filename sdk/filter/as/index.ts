// Package entry for `import ... from "@samsa/filter-as"` (asc looks for
// index.ts at the root of a package); the SDK lives in assembly/.
export * from "./assembly/index";
