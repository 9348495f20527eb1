// One CommonJS file with vscode-languageclient inlined: the .vsix then carries no node_modules at all.
// (Packaging with --no-dependencies WITHOUT bundling gives a .vsix that cannot load vscode-languageclient.)
import * as esbuild from "esbuild";

const production = process.argv.includes("--production");
const options = {
  entryPoints: ["src/extension.ts"],
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node18",
  external: ["vscode"],
  outfile: "out/extension.js",
  minify: production,
  sourcemap: !production,
  logLevel: "warning",
};
if (process.argv.includes("--tests")) {
  // Unit tests of the pure modules (no `vscode` at run time), for `node --test`.
  const { readdirSync } = await import("fs");
  const tests = readdirSync("test").filter((f) => f.endsWith(".test.ts")).map((f) => `test/${f}`);
  await esbuild.build({ ...options, entryPoints: tests, outfile: undefined, outdir: "out/test", sourcemap: true });
} else if (process.argv.includes("--watch")) {
  await (await esbuild.context(options)).watch();
} else {
  await esbuild.build(options);
}
