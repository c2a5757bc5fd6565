// Size budgets (gzip -9) and a check that the committed dist/ is what src/ builds to.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { build } from '../build.js';

const STUB_MAX = 400;
const CORE_MAX = 5120;

const dist = (name) => readFileSync(new URL('../dist/' + name, import.meta.url), 'utf8');
// As `gzip -9 FILE` counts it: the gzip stream plus the file name it stores (and its NUL).
const gzFile = (name) => gzipSync(Buffer.from(dist(name)), { level: 9 }).length + name.length + 1;

test(`the inline stub is at most ${STUB_MAX} bytes gzipped`, (t) => {
  const size = gzFile('stub.min.js');
  t.diagnostic(`stub.min.js: ${size} bytes gzipped`);
  assert.ok(size <= STUB_MAX, `${size} > ${STUB_MAX}`);
});

test(`the core is at most ${CORE_MAX} bytes gzipped`, (t) => {
  const size = gzFile('kairos.js');
  t.diagnostic(`kairos.js: ${size} bytes gzipped`);
  assert.ok(size <= CORE_MAX, `${size} > ${CORE_MAX}`);
});

test('dist/ is up to date with src/ (run `npm run build`)', async () => {
  const built = await build();
  assert.equal(dist('kairos.js'), built.core);
  assert.equal(dist('stub.min.js'), built.stub);
  assert.equal(dist('kairos-sw.js'), built.sw);
});

test('the built files use no eval, Function constructor or string timers', () => {
  for (const name of ['kairos.js', 'stub.min.js']) {
    const code = dist(name);
    assert.doesNotMatch(code, /\beval\s*\(|new Function|Function\(/, name);
    assert.doesNotMatch(code, /setTimeout\(\s*["'`]/, name);
  }
});
