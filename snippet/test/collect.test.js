import test from 'node:test';
import assert from 'node:assert/strict';
import { elementEvent, visibleTimer, watchElements, watchHistory } from '../src/collect.js';
import { FakeDocument, fakeWindow } from '../test-support/fake-dom.js';

test('visible time counts only while the page is visible', () => {
  let now = 0;
  let visible = true;
  const t = visibleTimer(() => now, () => visible);
  now = 1000;
  visible = false; // hidden at 1000
  t.update();
  now = 61000; // a minute in another tab
  visible = true;
  t.update();
  now = 61500;
  assert.equal(t.take(), 1500);
  now = 62000;
  assert.equal(t.take(), 500, 'take() restarts the count');
});

test('a page opened in a background tab counts from when it is first shown', () => {
  let now = 0;
  let visible = false;
  const t = visibleTimer(() => now, () => visible);
  now = 5000;
  visible = true;
  t.update();
  now = 7000;
  assert.equal(t.take(), 2000);
  visible = false;
  t.update();
  now = 9000;
  assert.equal(t.take(), 0, 'take() while hidden counts nothing more');
});

function marked(doc, tag, attrs) {
  const el = doc.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

test('data-kairos-event and data-kairos-prop-* make a track call; numbers stay numbers', () => {
  const doc = new FakeDocument();
  const el = marked(doc, 'button', {
    'data-kairos-event': 'Plan Chosen',
    'data-kairos-prop-plan-name': 'pro',
    'data-kairos-prop-price': '49.90',
    'data-kairos-prop-seats': '3',
    'data-kairos-prop-zip': '01234',
    'data-other': 'x',
  });
  assert.deepEqual(elementEvent(el), ['Plan Chosen', { plan_name: 'pro', price: 49.9, seats: 3, zip: '01234' }]);
  assert.equal(elementEvent(doc.createElement('div')), null);
});

test('a click anywhere inside a marked element tracks it once', () => {
  const doc = new FakeDocument();
  const calls = [];
  watchElements(doc, (name, props) => calls.push([name, props]));
  const button = doc.body.appendChild(marked(doc, 'a', { 'data-kairos-event': 'CTA Clicked', 'data-kairos-prop-where': 'hero' }));
  const icon = button.appendChild(doc.createElement('span'));
  icon.dispatchEvent({ type: 'click' });
  doc.body.dispatchEvent({ type: 'click' });
  assert.deepEqual(calls, [['CTA Clicked', { where: 'hero' }]]);
});

test('a marked form reports its submit, not the clicks inside it', () => {
  const doc = new FakeDocument();
  const calls = [];
  watchElements(doc, (name, props) => calls.push([name, props]));
  const form = doc.body.appendChild(marked(doc, 'form', { 'data-kairos-event': 'Signed Up', 'data-kairos-prop-list': 'weekly' }));
  const submit = form.appendChild(marked(doc, 'button', { type: 'submit' }));
  submit.dispatchEvent({ type: 'click' });
  form.dispatchEvent({ type: 'submit' });
  assert.deepEqual(calls, [['Signed Up', { list: 'weekly' }]]);
  const plain = doc.body.appendChild(doc.createElement('form'));
  plain.dispatchEvent({ type: 'submit' });
  assert.equal(calls.length, 1);
});

test('listeners sit in the capture phase, so stopPropagation on the page does not hide clicks', () => {
  const doc = new FakeDocument();
  watchElements(doc, () => {});
  assert.ok(doc.listeners.every((l) => l.capture));
});

test('pushState, replaceState and popstate report a navigation once things settle', () => {
  const win = fakeWindow({ href: 'https://a.example.com/' });
  let n = 0;
  watchHistory(win, () => n++);
  win.history.pushState({}, '', '/one');
  win.history.replaceState({}, '', '/two');
  assert.equal(win.location.pathname, '/two', 'the original methods still run');
  assert.equal(n, 0);
  win.timers.advance(100);
  assert.equal(n, 1, 'two quick changes, one report');
  win.dispatchEvent({ type: 'popstate' });
  win.timers.advance(100);
  assert.equal(n, 2);
});

test('a failing callback does not break the page\'s history calls', () => {
  const win = fakeWindow();
  watchHistory(win, () => { throw new Error('boom'); });
  assert.doesNotThrow(() => {
    win.history.pushState({}, '', '/x');
    win.timers.advance(100);
  });
});
