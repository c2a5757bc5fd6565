import test from 'node:test';
import assert from 'node:assert/strict';
import { applySlots, createMessenger, normalize } from '../src/decisions.js';
import { safeHref, showMessage } from '../src/messages.js';
import { FakeDocument } from '../test-support/fake-dom.js';

const BASE = 'https://shop.example.com/products/1';

function slot(doc, name, text = 'default') {
  const el = doc.body.appendChild(doc.createElement('div'));
  el.setAttribute('data-kairos-slot', name);
  el.textContent = text;
  return el;
}

test('normalize: the four parts are always there', () => {
  assert.deepEqual(normalize(null), { slots: {}, messages: [], push: [], segments: [] });
  assert.deepEqual(normalize('x'), { slots: {}, messages: [], push: [], segments: [] });
  const a = normalize({ success: true, slots: { a: {} }, segments: ['vip'] });
  assert.deepEqual([a.slots, a.messages, a.segments], [{ a: {} }, [], ['vip']]);
});

test('an html slot replaces the content of every element marked with its name', () => {
  const doc = new FakeDocument();
  const [a, b, other] = [slot(doc, 'hero'), slot(doc, 'hero'), slot(doc, 'footer')];
  applySlots(doc, { hero: { rule: 'r1', html: '<p>Welcome back, Ada &amp; co</p>' } }, false, CustomEvent);
  assert.equal(a.innerHTML, '<p>Welcome back, Ada &amp; co</p>');
  assert.equal(b.innerHTML, '<p>Welcome back, Ada &amp; co</p>');
  assert.equal(other.innerHTML, null);
  assert.equal(other.textContent, 'default');
});

test('a json slot is handed to the site as a bubbling kairos:slot event', () => {
  const doc = new FakeDocument();
  const el = slot(doc, 'recs');
  const seen = [];
  doc.body.addEventListener('kairos:slot', (e) => seen.push([e.target === el || e.currentTarget, e.detail]));
  el.addEventListener('kairos:slot', (e) => seen.push(['own', e.detail]));
  const json = { items: [{ id: 'p1' }] };
  applySlots(doc, { recs: { rule: 'r2', json } }, false, CustomEvent);
  assert.equal(seen.length, 2);
  assert.deepEqual(seen[0][1], json);
  assert.equal(el.innerHTML, null, 'nothing inserted');
});

test('skipHtml leaves visible default content alone but still hands json to the site', () => {
  const doc = new FakeDocument();
  const hero = slot(doc, 'hero');
  const recs = slot(doc, 'recs');
  let got = null;
  recs.addEventListener('kairos:slot', (e) => (got = e.detail));
  applySlots(doc, { hero: { html: '<b>late</b>' }, recs: { json: [1] } }, true, CustomEvent);
  assert.equal(hero.innerHTML, null);
  assert.deepEqual(got, [1]);
});

test('slots without a decision, inherited names and odd values are left alone', () => {
  const doc = new FakeDocument();
  const els = ['nothing', 'constructor', '__proto__', 'toString', 'str', 'num', 'nul'].map((n) => slot(doc, n));
  assert.doesNotThrow(() => applySlots(doc, JSON.parse('{"str": "x", "num": 3, "nul": null}'), false, CustomEvent));
  assert.ok(els.every((e) => e.innerHTML === null && e.textContent === 'default'));
});

test('safeHref: http(s) and relative links pass, script and data URLs do not', () => {
  assert.equal(safeHref('https://other.example.org/a?b=1', BASE), 'https://other.example.org/a?b=1');
  assert.equal(safeHref('/cart', BASE), 'https://shop.example.com/cart');
  assert.equal(safeHref('../sale', BASE), 'https://shop.example.com/sale');
  assert.equal(safeHref('?page=2', BASE), 'https://shop.example.com/products/1?page=2');
  assert.equal(safeHref('//cdn.example.com/x', BASE), 'https://cdn.example.com/x');
  for (const bad of ['javascript:alert(1)', ' JavaScript:alert(1)', 'java\tscript:alert(1)', '\u0000javascript:x', 'data:text/html,<b>', 'vbscript:x', 'mailto:a@b.c', '', '   ', null, undefined, 42, {}]) {
    assert.equal(safeHref(bad, BASE), null, String(bad));
  }
});

/** Renders through the messenger and records the track calls. */
function messenger() {
  const doc = new FakeDocument();
  const tracked = [];
  const show = createMessenger(doc, () => BASE, (event, props) => tracked.push([event, props]));
  return { doc, tracked, show };
}

test('a banner: role=status, aria-live, text as text, a safe CTA, a close button; impressions and clicks tracked', () => {
  const { doc, tracked, show } = messenger();
  show([{ rule: 'r3', type: 'banner', title: '<img src=x onerror=alert(1)>', body: 'Free <b>shipping</b>', cta: { label: 'Shop', url: '/sale' } }]);
  const box = doc.querySelector('.kairos-banner');
  assert.ok(box, 'rendered');
  assert.equal(box.getAttribute('role'), 'status');
  assert.equal(box.getAttribute('aria-live'), 'polite');
  const [h2, p, a, x] = box.children;
  assert.equal(h2.tagName, 'H2');
  assert.equal(h2.textContent, '<img src=x onerror=alert(1)>');
  assert.equal(h2.innerHTML, null, 'never parsed as HTML');
  assert.equal(p.textContent, 'Free <b>shipping</b>');
  assert.equal(a.tagName, 'A');
  assert.equal(a.href, 'https://shop.example.com/sale');
  assert.equal(a.textContent, 'Shop');
  assert.equal(x.tagName, 'BUTTON');
  assert.equal(x.getAttribute('aria-label'), 'Close');
  assert.deepEqual(tracked, [['Message Shown', { rule: 'r3', type: 'banner' }]]);
  a.dispatchEvent({ type: 'click' });
  assert.deepEqual(tracked[1], ['Message Clicked', { rule: 'r3', type: 'banner' }]);
  assert.equal(doc.querySelector('.kairos-banner'), null, 'closed after the click');
});

test('a javascript: CTA is not rendered; the message still is', () => {
  const { doc, show } = messenger();
  show([{ rule: 'r4', type: 'toast', body: 'Hi', cta: { label: 'Go', url: 'javascript:alert(1)' } }]);
  const box = doc.querySelector('.kairos-toast');
  assert.ok(box);
  assert.equal(box.querySelector('a'), null);
  assert.equal(box.getAttribute('role'), 'status');
});

test('the close button dismisses and reports it once', () => {
  const { doc, tracked, show } = messenger();
  show([{ rule: 'r5', type: 'toast', title: 'Saved' }]);
  const x = doc.querySelector('.kairos-x');
  x.dispatchEvent({ type: 'click' });
  x.dispatchEvent({ type: 'click' });
  assert.equal(doc.querySelector('.kairos-toast'), null);
  assert.deepEqual(tracked.map((t) => t[0]), ['Message Shown', 'Message Dismissed']);
});

test('a modal: role=dialog, aria-modal, named; focus moves in, stays in, Esc closes and focus returns', () => {
  const { doc, tracked, show } = messenger();
  const opener = doc.body.appendChild(doc.createElement('button'));
  opener.focus();
  show([{ rule: 'r6', type: 'modal', title: 'Your cart', body: '2 items', cta: { label: 'Checkout', url: 'https://shop.example.com/checkout' } }]);
  const overlay = doc.querySelector('.kairos-overlay');
  const box = doc.querySelector('.kairos-modal');
  assert.ok(overlay && box);
  assert.equal(box.getAttribute('role'), 'dialog');
  assert.equal(box.getAttribute('aria-modal'), 'true');
  assert.equal(box.getAttribute('aria-label'), 'Your cart');
  const a = box.querySelector('a');
  const x = box.querySelector('button');
  assert.equal(doc.activeElement, a, 'focus moved into the dialog');
  const tab = (shiftKey = false) => {
    const e = { type: 'keydown', key: 'Tab', shiftKey, defaultPrevented: false, preventDefault() { this.defaultPrevented = true; } };
    doc.activeElement.dispatchEvent(e);
    return e;
  };
  assert.ok(tab().defaultPrevented);
  assert.equal(doc.activeElement, x);
  tab();
  assert.equal(doc.activeElement, a, 'wraps forward');
  tab(true);
  assert.equal(doc.activeElement, x, 'wraps backward');
  doc.activeElement.dispatchEvent({ type: 'keydown', key: 'Escape' });
  assert.equal(doc.querySelector('.kairos-overlay'), null);
  assert.equal(doc.activeElement, opener, 'focus returned');
  assert.deepEqual(tracked.map((t) => t[0]), ['Message Shown', 'Message Dismissed']);
});

test('one modal at a time; a rule\'s message once per page load; unknown types skipped', () => {
  const { doc, tracked, show } = messenger();
  show([
    { rule: 'm1', type: 'modal', title: 'A' },
    { rule: 'm2', type: 'modal', title: 'B' },
    { rule: 'b1', type: 'banner', title: 'C' },
    { rule: 'b1', type: 'banner', title: 'C again' },
    { rule: 'p1', type: 'push', title: 'not ours' },
  ]);
  assert.equal(doc.querySelectorAll('.kairos-overlay').length, 1);
  assert.equal(doc.querySelectorAll('.kairos-banner').length, 1);
  assert.deepEqual(tracked.map((t) => t[1].rule), ['m1', 'b1']);
  doc.querySelector('.kairos-banner').querySelector('.kairos-x').dispatchEvent({ type: 'click' });
  show([{ rule: 'b1', type: 'banner', title: 'C' }]);
  assert.equal(doc.querySelectorAll('.kairos-banner').length, 0, 'dismissed stays dismissed');
});

test('showMessage works on its own and returns the element it added', () => {
  const doc = new FakeDocument();
  const el = showMessage(doc, { rule: 'x', type: 'banner', body: 'b' }, BASE, () => {});
  assert.equal(el.parentNode, doc.body);
});

test('a broken message list does not throw out of the messenger', () => {
  const { show } = messenger();
  assert.throws(() => show(null)); // main.js calls it through safe()
  assert.doesNotThrow(() => show([{ rule: 'z', type: 'banner', cta: { url: {} } }]));
});
