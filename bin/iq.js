#!/usr/bin/env node
// `iq` as npm links it (package.json "bin"). The CLI is TypeScript compiled into dist/ by
// `npm run build`, which `npm ci` runs through "prepare". This launcher is plain JavaScript kept
// in git so that `npx iq` exists even where the build has not run (`npm ci --ignore-scripts`, a
// deleted dist/) and then says what to do instead of "command not found" or a stack trace.
import { existsSync } from "node:fs";
import process from "node:process";
import { URL, fileURLToPath } from "node:url";

const cli = new URL("../dist/provisioning/cli.js", import.meta.url);
if (!existsSync(cli)) {
  const checkout = fileURLToPath(new URL("..", import.meta.url));
  process.stderr.write(`iq: not built yet: run npm run build (in ${checkout})\n`);
  process.exit(1);
}
const { main } = await import(cli.href);
process.exitCode = await main(process.argv.slice(2));
