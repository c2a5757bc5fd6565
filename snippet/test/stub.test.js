import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';
import { FakeDocument, fakeTimers } from '../test-support/fake-dom.js';

const SOURCES = {
  'src/stub.js': readFileSync(new URL('../src/stub.js', import.meta.url), 'utf8'),
  'dist/stub.min.js': readFileSync(new URL('../dist/stub.min.js', import.meta.url), 'utf8'),
};

/** The stub's code with other arguments after the write key (e.g. ", {timeout: 0}"). */
const withOptions = (code, extra) => code.replace(/(['"])WRITE_KEY\1/, (m) => m + extra);

function run(code, { doc = new FakeDocument(), nonce = 'n0nce', window: win = {} } = {}) {
  const timers = fakeTimers();
  if (!doc.currentScript) doc.currentScript = Object.assign(new FakeDocument().createElement('script'), { nonce });
  win.document = doc;
  vm.runInNewContext(code, { window: win, document: doc, setTimeout: timers.setTimeout });
  return { win, doc, timers };
}

for (const [name, code] of Object.entries(SOURCES)) {
  test(`${name}: queues calls in order and records the edge, the key and the options`, () => {
    const { win } = run(code);
    const k = win.kairos;
    assert.equal(typeof k, 'function');
    k('page');
    k('track', 'Signed Up', { plan: 'pro' });
    assert.deepEqual(Array.from(k.q, (a) => Array.from(a)), [['page'], ['track', 'Signed Up', { plan: 'pro' }]]);
    assert.equal(k.u, 'https://edge.example.com');
    assert.equal(k.k, 'WRITE_KEY');
    assert.deepEqual({ ...k.o }, {});
    assert.ok(Math.abs(k.t - Date.now()) < 5000);
  });

  test(`${name}: loads <edge>/k.js with the page's nonce`, () => {
    const { doc } = run(code, { nonce: 'abc123' });
    const script = doc.head.children.find((c) => c.tagName === 'SCRIPT');
    assert.equal(script.src, 'https://edge.example.com/k.js');
    assert.equal(script.nonce, 'abc123');
  });

  test(`${name}: hides only the slots, with a nonced stylesheet, until the timeout`, () => {
    const { doc, timers } = run(code, { nonce: 'abc123' });
    const style = doc.head.children.find((c) => c.tagName === 'STYLE');
    assert.equal(style.textContent, '.kairos-wait [data-kairos-slot]{visibility:hidden}');
    assert.equal(style.nonce, 'abc123');
    assert.ok(doc.documentElement.classList.contains('kairos-wait'));
    timers.advance(799);
    assert.ok(doc.documentElement.classList.contains('kairos-wait'));
    timers.advance(1);
    assert.ok(!doc.documentElement.classList.contains('kairos-wait'));
  });

  test(`${name}: once the core runs, the stub's timer leaves the reveal to it`, () => {
    const { win, doc, timers } = run(code);
    win.kairos.l = 1;
    timers.advance(5000);
    assert.ok(doc.documentElement.classList.contains('kairos-wait'));
  });

  test(`${name}: a blocked core reveals the slots at once`, () => {
    const { doc } = run(code);
    const script = doc.head.children.find((c) => c.tagName === 'SCRIPT');
    script.onerror();
    assert.ok(!doc.documentElement.classList.contains('kairos-wait'));
  });

  test(`${name}: options: timeout 0 hides nothing, another timeout is honoured`, () => {
    const none = run(withOptions(code, ', {timeout: 0}'));
    assert.ok(!none.doc.documentElement.classList.contains('kairos-wait'));
    assert.equal(none.doc.head.children.filter((c) => c.tagName === 'STYLE').length, 0);
    assert.equal(none.win.kairos.o.timeout, 0);
    const short = run(withOptions(code, ', {timeout: 300, consent: "pending"}'));
    short.timers.advance(300);
    assert.ok(!short.doc.documentElement.classList.contains('kairos-wait'));
    assert.equal(short.win.kairos.o.consent, 'pending');
  });

  test(`${name}: never throws, even on a broken document; the queue still works`, () => {
    const doc = new FakeDocument();
    doc.createElement = () => { throw new Error('blocked'); };
    const { win } = run(code, { doc });
    win.kairos('track', 'X');
    assert.equal(win.kairos.q.length, 1);
    const bare = { documentElement: null, head: null, currentScript: {} };
    assert.doesNotThrow(() => vm.runInNewContext(code, { window: {}, document: bare, setTimeout }));
  });

  test(`${name}: a second copy leaves the first (or the core) alone`, () => {
    const existing = function () {};
    const { win, doc } = run(code, { window: { kairos: existing } });
    assert.equal(win.kairos, existing);
    assert.equal(doc.head.children.length, 0);
  });
}

test('the README shows the current stub', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  assert.ok(readme.includes('<script>' + SOURCES['dist/stub.min.js']), 'paste dist/stub.min.js into README.md');
});
