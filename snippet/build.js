// Builds dist/kairos.js (the core, served by the edge as /k.js) and
// dist/stub.min.js (the inline stub). `node build.js` writes both;
// test/size.test.js imports build() to check that dist/ matches src/.
import { build as esbuild } from 'esbuild';
import { writeFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));

const common = { minify: true, target: 'es2017', write: false, legalComments: 'none', charset: 'utf8', logLevel: 'warning' };

/** Returns {core, stub, sw} as strings. */
export async function build() {
  const core = await esbuild({ ...common, entryPoints: [here('./src/main.js')], bundle: true, format: 'iife' });
  const stub = await esbuild({ ...common, entryPoints: [here('./src/stub.js')], bundle: false });
  const sw = await esbuild({ ...common, entryPoints: [here('./src/sw.js')], bundle: true, format: 'iife' });
  return { core: core.outputFiles[0].text, stub: stub.outputFiles[0].text, sw: sw.outputFiles[0].text };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { core, stub, sw } = await build();
  mkdirSync(here('./dist'), { recursive: true });
  writeFileSync(here('./dist/kairos.js'), core);
  writeFileSync(here('./dist/stub.min.js'), stub);
  writeFileSync(here('./dist/kairos-sw.js'), sw);
  console.log(`dist/kairos.js ${core.length} bytes, dist/stub.min.js ${stub.length} bytes`);
}
