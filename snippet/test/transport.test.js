import test from 'node:test';
import assert from 'node:assert/strict';
import { BATCH, INTERVAL, createTransport, verdict } from '../src/transport.js';
import { createRetryStore } from '../src/retry.js';
import { fakeFetch, fakeTimers, settle } from '../test-support/fake-dom.js';

const URL_ = 'https://edge.example.com';

function memStorage() {
  const map = new Map();
  return { map, get: (k) => (map.has(k) ? map.get(k) : null), set: (k, v) => void map.set(k, v), del: (k) => void map.delete(k) };
}

let seq = 0;
const ev = (type = 'track') => ({ type, messageId: 'm' + ++seq, anonymousId: 'a1', event: 'E', properties: {} });

/** A transport over fakes. status: a number, or a function (url, call number) → status, or 'network'. */
function setup({ status = 200, body = { success: true }, beacon = true, online = true, console: log } = {}) {
  const timers = fakeTimers();
  let n = 0;
  const fetch = fakeFetch((url) => {
    n++;
    const s = typeof status === 'function' ? status(url, n) : status;
    if (s === 'network') throw new Error('offline');
    return { status: s, body };
  });
  const beacons = [];
  const nav = {
    onLine: online,
    sendBeacon: (url, data) => {
      beacons.push({ url, body: JSON.parse(data) });
      return beacon;
    },
  };
  const win = { fetch, navigator: nav, setTimeout: timers.setTimeout, clearTimeout: timers.clearTimeout, console: log };
  const storage = memStorage();
  const store = createRetryStore(storage);
  const t = createTransport(win, URL_, 'KEY', store, () => timers.clock.now, () => 1);
  return { t, timers, fetch, beacons, nav, store, storage };
}

/** Runs timers and promise callbacks until nothing is left to do within ms. */
async function run(timers, ms) {
  for (let i = 0; i < 50; i++) {
    await settle();
    timers.advance(0);
  }
  if (ms) {
    timers.advance(ms);
    for (let i = 0; i < 50; i++) {
      await settle();
      timers.advance(0);
    }
  }
}

test('verdict: 2xx sent, 429 / 5xx / no answer retried, other 4xx dropped', () => {
  for (const s of [200, 201, 204]) assert.equal(verdict(s), 'ok');
  for (const s of [0, undefined, 429, 500, 502, 503, 504]) assert.equal(verdict(s), 'retry');
  for (const s of [400, 401, 403, 404, 413, 422, 301]) assert.equal(verdict(s), 'drop');
});

test('one page view goes to /v1/e as itself with writeKey and sentAt, and resolves with the answer', async () => {
  const answer = { success: true, slots: { hero: { rule: 'r1', html: '<b>Hi</b>' } } };
  const { t, fetch } = setup({ body: answer });
  const e = ev('page');
  const got = await t.send(e);
  assert.deepEqual(got, answer);
  const [call] = fetch.calls;
  assert.equal(call.url, URL_ + '/v1/e');
  assert.equal(call.init.method, 'POST');
  assert.equal(call.init.credentials, 'include');
  assert.equal(call.init.keepalive, true);
  assert.equal(typeof call.init.body, 'string', 'a string body is sent as text/plain: no preflight');
  assert.equal(call.init.headers, undefined, 'no custom headers: no preflight');
  assert.equal(call.body.writeKey, 'KEY');
  assert.equal(call.body.messageId, e.messageId);
  assert.equal(call.body.type, 'page');
  assert.match(call.body.sentAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});

test('batched events wait for the interval, then go together to /v1/b', async () => {
  const { t, timers, fetch } = setup();
  const events = [ev(), ev(), ev()];
  events.forEach((e) => t.push(e));
  await run(timers);
  assert.equal(fetch.calls.length, 0);
  await run(timers, INTERVAL);
  assert.equal(fetch.calls.length, 1);
  const { url, body } = fetch.calls[0];
  assert.equal(url, URL_ + '/v1/b');
  assert.equal(body.writeKey, 'KEY');
  assert.deepEqual(body.batch.map((e) => e.messageId), events.map((e) => e.messageId));
  assert.ok(body.batch.every((e) => e.sentAt === body.sentAt));
});

test(`the ${BATCH}th event flushes at once; the outbox is empty after success`, async () => {
  const { t, timers, fetch, store } = setup();
  for (let i = 0; i < BATCH; i++) t.push(ev());
  await run(timers);
  assert.equal(fetch.calls.length, 1);
  assert.equal(fetch.calls[0].body.batch.length, BATCH);
  assert.deepEqual(store.all(), []);
});

test('more stored events than a batch go out batch after batch', async () => {
  const { t, timers, fetch, store } = setup();
  store.add(Array.from({ length: 45 }, () => ev()));
  t.flush();
  await run(timers);
  assert.deepEqual(fetch.calls.map((c) => c.body.batch.length), [20, 20, 5]);
  assert.deepEqual(store.all(), []);
});

test('503: kept, retried with backoff, the same messageIds every time, until it passes', async () => {
  const { t, timers, fetch, store } = setup({ status: (url, n) => (n <= 3 ? 503 : 200) });
  const e = ev();
  t.push(e);
  t.flush();
  await run(timers);
  assert.equal(fetch.calls.length, 1);
  assert.deepEqual(store.all().map((x) => x.messageId), [e.messageId]);
  // random() is 1, so the delays are exactly 1 s, 2 s, 4 s.
  await run(timers, 999);
  assert.equal(fetch.calls.length, 1);
  await run(timers, 1);
  assert.equal(fetch.calls.length, 2);
  await run(timers, 1999);
  assert.equal(fetch.calls.length, 2);
  await run(timers, 1);
  assert.equal(fetch.calls.length, 3);
  await run(timers, 4000);
  assert.equal(fetch.calls.length, 4);
  assert.ok(fetch.calls.every((c) => c.body.batch[0].messageId === e.messageId));
  assert.deepEqual(store.all(), []);
});

test('new events wait behind the backoff instead of hammering a failing edge', async () => {
  const { t, timers, fetch, store } = setup({ status: (url, n) => (n === 1 ? 503 : 200) });
  t.push(ev());
  t.flush();
  await run(timers);
  t.push(ev());
  t.flush();
  await run(timers);
  assert.equal(fetch.calls.length, 1);
  assert.equal(store.all().length, 2);
  await run(timers, 1000);
  assert.equal(fetch.calls.length, 2);
  assert.equal(fetch.calls[1].body.batch.length, 2);
});

test('network errors and 429 are retried', async () => {
  for (const status of ['network', 429]) {
    const { t, timers, store } = setup({ status });
    t.push(ev());
    t.flush();
    await run(timers);
    assert.equal(store.all().length, 1, String(status));
  }
});

test('a 4xx batch is dropped: it would never succeed', async () => {
  const { t, timers, fetch, store } = setup({ status: 400 });
  t.push(ev());
  t.flush();
  await run(timers, 120000);
  assert.equal(fetch.calls.length, 1);
  assert.deepEqual(store.all(), []);
});

test('a failed page view is kept for a batch retry and resolves with no answer', async () => {
  const { t, timers, fetch, store } = setup({ status: (url, n) => (n === 1 ? 503 : 200) });
  const e = ev('page');
  assert.equal(await t.send(e), null);
  assert.deepEqual(store.all().map((x) => x.messageId), [e.messageId]);
  await run(timers, 1000);
  assert.equal(fetch.calls[1].url, URL_ + '/v1/b');
  assert.equal(fetch.calls[1].body.batch[0].messageId, e.messageId);
  assert.deepEqual(store.all(), []);
});

test('a dropped page view resolves with no answer and is not kept', async () => {
  const { t, store } = setup({ status: 401 });
  assert.equal(await t.send(ev('page')), null);
  assert.deepEqual(store.all(), []);
});

test('a refused key or origin is said once on the console, with the edge\'s reason', async () => {
  const warnings = [];
  const body = { success: false, error: 'forbidden', reason: 'the origin http://x:9 is not among the origins' };
  const { t, timers } = setup({ status: 403, body, console: { warn: (...args) => warnings.push(args) } });
  await t.send(ev('page'));
  t.push(ev());
  t.flush();
  await t.send(ev('page'));
  await run(timers, 120000);
  assert.deepEqual(warnings, [['Kairos refused:', 403, 'the origin http://x:9 is not among the origins']]);
});

test('other drops, and a page without a console, say nothing and break nothing', async () => {
  const warnings = [];
  const quiet = setup({ status: 400, console: { warn: (text) => warnings.push(text) } });
  await quiet.t.send(ev('page'));
  await run(quiet.timers);
  assert.deepEqual(warnings, []);
  const bare = setup({ status: 401, body: null });
  assert.equal(await bare.t.send(ev('page')), null);
  await run(bare.timers);
});

test('offline: nothing is tried; coming back online sends what waited', async () => {
  const { t, timers, fetch, store, nav } = setup({ online: false });
  t.push(ev());
  t.push(ev());
  await run(timers, INTERVAL);
  assert.equal(fetch.calls.length, 0);
  assert.equal(store.all().length, 2);
  nav.onLine = true;
  t.online();
  await run(timers);
  assert.equal(fetch.calls.length, 1);
  assert.deepEqual(store.all(), []);
});

test('online() forgets the backoff', async () => {
  const { t, timers, fetch } = setup({ status: (url, n) => (n === 1 ? 'network' : 200) });
  t.push(ev());
  t.flush();
  await run(timers);
  t.online();
  await run(timers);
  assert.equal(fetch.calls.length, 2);
});

test('leaving the page: batched events go by sendBeacon to /v1/b, nothing by fetch', async () => {
  const { t, timers, fetch, beacons, store } = setup();
  const e = ev();
  t.push(e);
  t.leave();
  await run(timers, INTERVAL);
  assert.equal(fetch.calls.length, 0);
  assert.equal(beacons.length, 1);
  assert.equal(beacons[0].url, URL_ + '/v1/b');
  assert.equal(beacons[0].body.writeKey, 'KEY');
  assert.equal(beacons[0].body.batch[0].messageId, e.messageId);
  assert.deepEqual(store.all(), []);
  t.leave();
  assert.equal(beacons.length, 1, 'nothing left: no empty beacon');
});

test('a refused beacon keeps the events for the next page', async () => {
  const { t, store } = setup({ beacon: false });
  const e = ev();
  t.push(e);
  t.leave();
  assert.deepEqual(store.all().map((x) => x.messageId), [e.messageId]);
});

test('clear() forgets batched and stored events', async () => {
  const { t, timers, fetch, store } = setup();
  store.add([ev()]);
  t.push(ev());
  t.clear();
  await run(timers, INTERVAL);
  assert.equal(fetch.calls.length, 0);
  assert.deepEqual(store.all(), []);
});

test('a fetch that throws synchronously counts as a network error', async () => {
  const timers = fakeTimers();
  const store = createRetryStore(memStorage());
  const win = { fetch() { throw new TypeError('bad'); }, navigator: { onLine: true }, setTimeout: timers.setTimeout, clearTimeout: timers.clearTimeout };
  const t = createTransport(win, URL_, 'KEY', store, () => timers.clock.now, () => 1);
  assert.equal(await t.send(ev('page')), null);
  assert.equal(store.all().length, 1);
});
