// Usage: node web/build.mjs OUT_DIR  (from anywhere; `make web` writes the committed copy into
// crates/courier-server/assets, `make check-web` a scratch one to compare)
//
// Builds the chat page that courier-server embeds: app.js, the TypeScript of web/src bundled by
// the pinned esbuild with its imports (`courier-proto` from gen/ts through web/tsconfig.json's
// paths, @connectrpc/connect-web, @connectrpc/connect and @bufbuild/protobuf from node_modules/),
// minified, as an ES module; index.html, app.css and icon.svg as they are. The output depends on
// nothing but these inputs and the versions the lockfile pins: no timestamps, no absolute paths,
// no source maps. The banner names each bundled package, its version and licence (read from
// its package.json), courier-proto without its version, which only its package.json carries.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import * as esbuild from "esbuild";

const out = process.argv[2];
if (!out || process.argv.length > 3) {
  console.error("usage: node web/build.mjs OUT_DIR");
  process.exit(2);
}
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const outDir = resolve(out);
mkdirSync(outDir, { recursive: true });

const result = await esbuild.build({
  absWorkingDir: root,
  entryPoints: ["web/src/main.ts"],
  outfile: join(outDir, "app.js"),
  tsconfig: "web/tsconfig.json",
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2022"],
  minify: true,
  charset: "utf8",
  legalComments: "none",
  sourcemap: false,
  metafile: true,
  write: false,
  logLevel: "warning",
});

// Which package each bundled file came from, by its path relative to the repository.
const packages = new Map();
for (const input of Object.keys(result.metafile.inputs).sort()) {
  // The innermost node_modules/ holds the file's package (npm may nest one in another).
  const match = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
  let manifest;
  if (input.startsWith("node_modules/") && match) {
    manifest = join(root, match[1], "package.json");
  } else if (input.startsWith("gen/ts/")) {
    manifest = join(root, "gen/ts/package.json");
  } else if (input.startsWith("web/src/")) {
    continue;
  } else {
    throw new Error(`bundled from outside node_modules/, gen/ts and web/src: ${input}`);
  }
  const { name, version, license: spdx } = JSON.parse(readFileSync(manifest, "utf8"));
  const license = spdx.replace(/^\((.*)\)$/, "$1");
  packages.set(name, name === "courier-proto" ? `${name} (${license})` : `${name} ${version} (${license})`);
}
const banner =
  "/*! Courier chat page (web/src). Bundled with esbuild " +
  `${esbuild.version}: ${[...packages.keys()].sort().map((name) => packages.get(name)).join(", ")}. */\n`;

const [bundle] = result.outputFiles;
writeFileSync(join(outDir, "app.js"), banner + bundle.text);
for (const file of ["index.html", "app.css", "icon.svg"]) {
  copyFileSync(join(root, "web", file), join(outDir, file));
}
