// The core wired together, against a fake window (and the built file in a VM).
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';
import { start } from '../src/main.js';
import { fakeFetch, fakeWindow, settle } from '../test-support/fake-dom.js';

const EDGE = 'https://edge.example.com';
const V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const ANSWER = {
  success: true,
  slots: { hero: { rule: 'r1', html: '<p>Hello Ada</p>' }, recs: { rule: 'r2', json: { items: ['p1'] } } },
  messages: [{ rule: 'r3', type: 'banner', title: 'Free shipping', body: 'Today only' }],
  push: [],
  segments: ['vip'],
};

/** What the inline stub leaves behind, with calls already queued. */
function stub(win, options = {}, calls = []) {
  const f = function () { f.q.push(arguments); };
  Object.assign(f, { q: [], u: EDGE, k: 'KEY', o: options, t: Date.now() });
  win.kairos = f;
  win.document.documentElement.classList.add('kairos-wait');
  for (const c of calls) f(...c);
}

function page(win) {
  const doc = win.document;
  for (const name of ['hero', 'recs']) {
    const el = doc.body.appendChild(doc.createElement('div'));
    el.setAttribute('data-kairos-slot', name);
    el.textContent = 'default ' + name;
  }
  return win;
}

function edge(answer = ANSWER, status = 200) {
  return fakeFetch((url) => (url.endsWith('/v1/e') ? { status, body: answer } : { status: 200, body: { success: true, accepted: 1 } }));
}

async function run(win, ms = 0) {
  for (let i = 0; i < 20; i++) await settle();
  if (ms) win.timers.advance(ms);
  for (let i = 0; i < 20; i++) await settle();
}

const pageViews = (win) => win.fetch.calls.filter((c) => c.url === EDGE + '/v1/e').map((c) => c.body);
const batched = (win) => win.fetch.calls.filter((c) => c.url === EDGE + '/v1/b').flatMap((c) => c.body.batch);
const pending = (win) => win.document.documentElement.classList.contains('kairos-wait');

test('queued calls replay in order; the automatic page view goes to /v1/e in Segment\'s shape', async () => {
  const win = page(fakeWindow({ fetch: edge() }));
  stub(win, {}, [
    ['identify', 'u1', { plan: 'pro' }, { userHash: 'h1' }],
    ['track', 'Viewed Promo', { promo: 'spring' }],
  ]);
  start(win);
  await run(win, 1000);
  const [pv] = pageViews(win);
  assert.equal(pv.type, 'page');
  assert.equal(pv.writeKey, 'KEY');
  assert.match(pv.messageId, V4);
  assert.match(pv.anonymousId, V4);
  assert.equal(pv.userId, 'u1');
  assert.match(pv.timestamp, ISO);
  assert.match(pv.sentAt, ISO);
  assert.equal(pv.properties.path, '/products');
  assert.equal(pv.properties.url, 'https://shop.example.com/products?utm_source=news');
  assert.deepEqual(pv.context.page, { url: 'https://shop.example.com/products?utm_source=news', path: '/products', referrer: '', title: 'Home', search: '?utm_source=news' });
  assert.deepEqual(pv.context.campaign, { source: 'news' });
  assert.equal(pv.context['library'].name, 'kairos-snippet');
  assert.equal(pv.context.userHash, 'h1');
  assert.deepEqual(pv.context.screen, { width: 1440, height: 900 });
  assert.equal(pv.context.locale, 'en-GB');
  const events = batched(win);
  assert.deepEqual(events.slice(0, 2).map((e) => e.type + ':' + (e.event || '')), ['identify:', 'track:Viewed Promo']);
  assert.deepEqual(events[0].traits, { plan: 'pro' });
  assert.deepEqual(events[1].properties, { promo: 'spring' });
  assert.ok(events.every((e) => e.anonymousId === pv.anonymousId && e.userId === 'u1'));
  assert.equal(new Set([pv, ...events].map((e) => e.messageId)).size, events.length + 1);
});

test('the answer fills the slots, reveals them, shows messages, and reaches ready() and kairos:decisions', async () => {
  const win = page(fakeWindow({ fetch: edge() }));
  const got = [];
  stub(win, {}, [['ready', (d) => got.push(['ready', d])]]);
  win.addEventListener('kairos:decisions', (e) => got.push(['event', e.detail]));
  let slotEvent = null;
  win.document.querySelector('[data-kairos-slot="recs"]').addEventListener('kairos:slot', (e) => (slotEvent = e.detail));
  start(win);
  assert.ok(pending(win), 'slots hidden while the decision is pending');
  await run(win);
  assert.ok(!pending(win));
  assert.equal(win.document.querySelector('[data-kairos-slot="hero"]').innerHTML, '<p>Hello Ada</p>');
  assert.deepEqual(slotEvent, { items: ['p1'] });
  assert.ok(win.document.querySelector('.kairos-banner'));
  assert.deepEqual(got.map((g) => g[0]), ['ready', 'event']);
  assert.deepEqual(got[0][1].segments, ['vip']);
  let late = null;
  win.kairos('ready', (d) => (late = d));
  assert.deepEqual(late.slots, ANSWER.slots, 'ready() after the answer is called at once');
  await run(win, 1000);
  const shown = batched(win).find((e) => e.event === 'Message Shown');
  assert.deepEqual(shown.properties, { rule: 'r3', type: 'banner' });
});

test('no answer within the timeout: slots show their default; a late answer does not replace them', async () => {
  let answer;
  const fetch = (url, init) => {
    fetch.calls.push({ url, body: JSON.parse(init.body) });
    return url.endsWith('/v1/e') ? new Promise((r) => (answer = r)) : Promise.resolve({ status: 200, json: async () => ({}) });
  };
  fetch.calls = [];
  const win = page(fakeWindow({ fetch }));
  stub(win, {}, [['config', { timeout: 500 }]]);
  start(win);
  await run(win, 450); // the timeout counts from the stub's start, a few real ms ago
  assert.ok(pending(win));
  await run(win, 50);
  assert.ok(!pending(win), 'revealed at the configured timeout');
  let ready = null;
  win.kairos('ready', (d) => (ready = d));
  answer({ status: 200, json: async () => ANSWER });
  await run(win);
  assert.equal(win.document.querySelector('[data-kairos-slot="hero"]').innerHTML, null);
  assert.ok(ready, 'ready still gets the decisions');
});

test('an edge error reveals at once and ready() gets empty decisions', async () => {
  const win = page(fakeWindow({ fetch: edge({}, 503) }));
  let ready = null;
  stub(win, {}, [['ready', (d) => (ready = d)]]);
  start(win);
  await run(win);
  assert.ok(!pending(win));
  assert.deepEqual(ready, { slots: {}, messages: [], push: [], segments: [] });
  assert.ok(win.localStorage.map.get('kairos_q').includes('"page"'), 'the page view waits in the outbox');
});

test('consent pending: nothing sent or stored; granted sends what waited; denied drops and clears', async () => {
  const win = page(fakeWindow({ fetch: edge() }));
  stub(win, { consent: 'pending' }, [['track', 'Early']]);
  start(win);
  await run(win, 2000);
  assert.equal(win.fetch.calls.length, 0);
  assert.equal(win.localStorage.map.size, 0);
  win.kairos('consent', 'granted');
  await run(win, 2000);
  assert.equal(pageViews(win).length, 1);
  assert.deepEqual(batched(win).map((e) => e.event).slice(0, 1), ['Early']);
  assert.ok(win.localStorage.map.has('kairos_aid'));
  const before = win.fetch.calls.length;
  win.kairos('consent', 'denied');
  win.kairos('track', 'After');
  await run(win, 2000);
  assert.equal(win.fetch.calls.length, before);
  assert.ok(!win.localStorage.map.has('kairos_aid'));
});

test('a denial queued after a page view still stops it', async () => {
  const win = page(fakeWindow({ fetch: edge() }));
  let ready = null;
  stub(win, {}, [['page'], ['consent', 'denied'], ['ready', (d) => (ready = d)]]);
  start(win);
  await run(win, 2000);
  assert.equal(win.fetch.calls.length, 0);
  assert.ok(!pending(win));
  assert.deepEqual(ready.slots, {});
});

test('bots send nothing at all', async () => {
  for (const opts of [{ ua: 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)' }, {}]) {
    const win = page(fakeWindow({ fetch: edge(), ...opts }));
    if (!opts.ua) win.navigator.webdriver = true;
    let ready = null;
    stub(win, {}, [['ready', (d) => (ready = d)], ['consent', 'granted'], ['track', 'X']]);
    start(win);
    win.kairos('page');
    await run(win, 5000);
    assert.equal(win.fetch.calls.length, 0);
    assert.equal(win.beacons.length, 0);
    assert.ok(!pending(win));
    assert.deepEqual(ready.slots, {});
  }
});

test('SPA navigation: a page view per URL change, with the previous URL as referrer and its visible time', async () => {
  const win = page(fakeWindow({ fetch: edge() }));
  stub(win);
  start(win);
  await run(win);
  win.history.pushState({}, '', '/checkout');
  win.history.replaceState({ step: 1 }, '');
  await run(win, 100);
  win.dispatchEvent({ type: 'popstate' }); // same URL: no new page view
  await run(win, 100);
  const views = pageViews(win);
  assert.equal(views.length, 2);
  assert.equal(views[1].properties.path, '/checkout');
  assert.equal(views[1].context.page.referrer, 'https://shop.example.com/products?utm_source=news');
  assert.equal(typeof views[1].properties.visible_ms, 'number');
  assert.equal(views[0].properties.visible_ms, undefined);
});

test('a page view called by the site turns the automatic ones off', async () => {
  const win = page(fakeWindow({ fetch: edge() }));
  stub(win, {}, [['page', 'Product', { sku: 'A1' }]]);
  start(win);
  await run(win);
  win.history.pushState({}, '', '/other');
  await run(win, 200);
  const views = pageViews(win);
  assert.equal(views.length, 1);
  assert.equal(views[0].name, 'Product');
  assert.equal(views[0].properties.sku, 'A1');
  assert.equal(views[0].properties.path, '/products');
});

test('leaving: the visible time goes as "Page Left" by sendBeacon, with what was batched', async () => {
  const win = page(fakeWindow({ fetch: edge() }));
  stub(win);
  start(win);
  await run(win);
  win.kairos('track', 'Added to Cart', { sku: 'A1' });
  win.dispatchEvent({ type: 'pagehide' });
  assert.equal(win.beacons.length, 1);
  assert.equal(win.beacons[0].url, EDGE + '/v1/b');
  const names = win.beacons[0].body.batch.map((e) => e.event);
  assert.ok(names.includes('Added to Cart') && names.includes('Page Left'), names.join());
  const left = win.beacons[0].body.batch.find((e) => e.event === 'Page Left');
  assert.equal(typeof left.properties.visible_ms, 'number');
});

test('hiding the tab flushes by sendBeacon too', async () => {
  const win = page(fakeWindow({ fetch: edge() }));
  stub(win);
  start(win);
  await run(win);
  win.kairos('track', 'Something');
  win.document.visibilityState = 'hidden';
  win.document.dispatchEvent({ type: 'visibilitychange' });
  assert.equal(win.beacons.length, 1);
  assert.ok(win.beacons[0].body.batch.some((e) => e.event === 'Something'));
});

test('marked elements are tracked on click', async () => {
  const win = page(fakeWindow({ fetch: edge() }));
  const btn = win.document.body.appendChild(win.document.createElement('button'));
  btn.setAttribute('data-kairos-event', 'Plan Chosen');
  btn.setAttribute('data-kairos-prop-plan', 'pro');
  stub(win);
  start(win);
  btn.dispatchEvent({ type: 'click' });
  await run(win, 1000);
  const e = batched(win).find((x) => x.event === 'Plan Chosen');
  assert.deepEqual(e.properties, { plan: 'pro' });
});

test('reset starts a new visitor; alias links a new id to the current one', async () => {
  const win = page(fakeWindow({ fetch: edge() }));
  stub(win);
  start(win);
  await run(win);
  const first = pageViews(win)[0].anonymousId;
  win.kairos('identify', 'u9', {}, { userHash: 'h9' });
  win.kairos('alias', 'u10', { userHash: 'h10' });
  win.kairos('reset');
  win.kairos('track', 'After Reset');
  await run(win, 1000);
  const [identify, alias, after] = batched(win).filter((e) => ['identify', 'alias'].includes(e.type) || e.event === 'After Reset');
  assert.equal(identify.userId, 'u9');
  assert.equal(identify.context.userHash, 'h9');
  assert.deepEqual([alias.userId, alias.previousId, alias.context.userHash], ['u10', 'u9', 'h10']);
  assert.notEqual(after.anonymousId, first);
  assert.match(after.anonymousId, V4);
  assert.equal(after.userId, undefined);
  assert.equal(after.context.userHash, undefined);
});

test('the anonymous id the edge put in the kairos_aid cookie is used', async () => {
  const win = page(fakeWindow({ fetch: edge() }));
  win.document.cookie = 'kairos_aid=edge-set-id-1';
  stub(win);
  start(win);
  await run(win);
  assert.equal(pageViews(win)[0].anonymousId, 'edge-set-id-1');
  assert.equal(win.localStorage.map.get('kairos_aid'), 'edge-set-id-1', 'mirrored in localStorage');
});

test('calls never throw, whatever they are given', async () => {
  const win = page(fakeWindow({ fetch: edge() }));
  stub(win, null, [[], [null], ['nope'], ['ready', () => { throw new Error('site bug'); }]]);
  start(win);
  await run(win);
  const k = win.kairos;
  const weird = [[], [null], [undefined], [42], ['nope'], ['constructor'], ['__proto__'], ['toString'], ['hasOwnProperty', 'x'],
    ['track'], ['track', null], ['track', {}, 5], ['page', 5, 'x'], ['page', null, null], ['identify', {}], ['identify', null, null, null],
    ['alias'], ['consent', 'maybe'], ['config', 'x'], ['ready', 'not a function'], ['ready', () => { throw new Error('x'); }]];
  for (const args of weird) assert.doesNotThrow(() => k(...args), JSON.stringify(args));
  const cyclic = {};
  cyclic.self = cyclic;
  assert.doesNotThrow(() => k('track', 'Cyclic', cyclic));
  assert.doesNotThrow(() => k('track', 'Big', { n: 10n }));
  await run(win, 2000);
  const names = batched(win).map((e) => e.event);
  assert.ok(!names.includes('Cyclic') && !names.includes('Big'), 'what cannot be sent is dropped at the call');
});

test('properties are copied at the call: later changes by the site do not leak in', async () => {
  const win = page(fakeWindow({ fetch: edge() }));
  stub(win);
  start(win);
  await run(win);
  const props = { step: 1 };
  win.kairos('track', 'Step', props);
  props.step = 2;
  await run(win, 1000);
  assert.equal(batched(win).find((e) => e.event === 'Step').properties.step, 1);
});

test('without the stub the core does nothing', async () => {
  const win = page(fakeWindow({ fetch: edge() }));
  start(win);
  await run(win, 2000);
  assert.equal(win.fetch.calls.length, 0);
  assert.equal(win.kairos, undefined);
});

test('loading the core twice starts it once', async () => {
  const win = page(fakeWindow({ fetch: edge() }));
  stub(win);
  start(win);
  start(win);
  await run(win);
  assert.equal(pageViews(win).length, 1);
});

test('a prerendered page counts when it is shown, not before', async () => {
  const win = page(fakeWindow({ fetch: edge() }));
  win.document.prerendering = true;
  stub(win);
  start(win);
  await run(win, 2000);
  assert.equal(win.fetch.calls.length, 0);
  win.document.prerendering = false;
  win.document.dispatchEvent({ type: 'prerenderingchange' });
  await run(win);
  assert.equal(pageViews(win).length, 1);
});

test('the built dist/kairos.js starts by itself and sends the page view', async () => {
  const code = readFileSync(new URL('../dist/kairos.js', import.meta.url), 'utf8');
  const win = page(fakeWindow({ fetch: edge() }));
  stub(win, {}, [['track', 'Before Load']]);
  vm.runInNewContext(code, { window: win, URL, URLSearchParams });
  await run(win, 1000);
  assert.equal(pageViews(win).length, 1);
  assert.equal(win.document.querySelector('[data-kairos-slot="hero"]').innerHTML, '<p>Hello Ada</p>');
  assert.ok(batched(win).some((e) => e.event === 'Before Load'));
});
