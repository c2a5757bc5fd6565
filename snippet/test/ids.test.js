import test from 'node:test';
import assert from 'node:assert/strict';
import { createIdentity, uuid, validId, AID } from '../src/ids.js';

const V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** A storage.js look-alike over maps, recording cookie drops. */
function fakeStore({ cookie = null, local = {} } = {}) {
  const map = new Map(Object.entries(local));
  const store = {
    map,
    cookieValue: cookie,
    dropped: [],
    get: (k) => (map.has(k) ? map.get(k) : null),
    set: (k, v) => void map.set(k, v),
    del: (k) => void map.delete(k),
    cookie: (name) => (name === AID ? store.cookieValue : null),
    dropCookie: (name) => {
      store.dropped.push(name);
      store.cookieValue = null;
    },
  };
  return store;
}

let n = 0;
const counter = () => 'id-' + ++n;

test('uuid: version 4 from crypto.getRandomValues, all different', () => {
  const seen = new Set();
  for (let i = 0; i < 500; i++) {
    const id = uuid(globalThis.crypto);
    assert.match(id, V4);
    seen.add(id);
  }
  assert.equal(seen.size, 500);
});

test('uuid: still a valid v4 without crypto', () => {
  assert.match(uuid(undefined), V4);
  assert.match(uuid({ getRandomValues() { throw new Error('no'); } }), V4);
});

test('uuid: version and variant bits come from the right bytes', () => {
  const zeros = { getRandomValues: (b) => b.fill(0) };
  const ones = { getRandomValues: (b) => b.fill(255) };
  assert.equal(uuid(zeros), '00000000-0000-4000-8000-000000000000');
  assert.equal(uuid(ones), 'ffffffff-ffff-4fff-bfff-ffffffffffff');
});

test('validId accepts ids, rejects markup, separators and oversize values', () => {
  assert.equal(validId('0b6e1f2a-1c2d-4e5f-8a9b-0c1d2e3f4a5b'), '0b6e1f2a-1c2d-4e5f-8a9b-0c1d2e3f4a5b');
  assert.equal(validId('anon:abc.DEF_1'), 'anon:abc.DEF_1');
  for (const bad of [null, undefined, '', 'a b', 'a;b', '<x>', '"q"', 'x'.repeat(129)]) assert.equal(validId(bad), null, bad);
});

test('the cookie the edge set wins over localStorage', () => {
  const id = createIdentity(fakeStore({ cookie: 'from-cookie', local: { [AID]: 'from-storage' } }), counter);
  assert.equal(id.anonymousId, 'from-cookie');
});

test('localStorage is used when there is no cookie; a fresh id when neither is usable', () => {
  assert.equal(createIdentity(fakeStore({ local: { [AID]: 'from-storage' } }), counter).anonymousId, 'from-storage');
  const fresh = createIdentity(fakeStore({ cookie: 'bad value;', local: { [AID]: '<script>' } }), () => 'new-one');
  assert.equal(fresh.anonymousId, 'new-one');
});

test('nothing is written before consent; everything once granted', () => {
  const store = fakeStore();
  const id = createIdentity(store, () => 'aid-1');
  id.identify('42', 'hmac-42');
  assert.equal(store.map.size, 0);
  id.mode('pending');
  assert.equal(store.map.size, 0);
  id.mode('granted');
  assert.deepEqual(Object.fromEntries(store.map), { kairos_aid: 'aid-1', kairos_uid: '42', kairos_uh: 'hmac-42' });
});

test('a persisted identity comes back on the next page', () => {
  const store = fakeStore();
  const first = createIdentity(store, () => 'aid-1');
  first.mode('granted');
  first.identify(7, 'sig');
  const next = createIdentity(store, () => 'other');
  assert.deepEqual([next.anonymousId, next.userId, next.userHash], ['aid-1', '7', 'sig']);
});

test('identify: a new user forgets the old signature; traits-only calls keep the user', () => {
  const id = createIdentity(fakeStore(), counter);
  id.identify('a', 'sig-a');
  assert.deepEqual([id.userId, id.userHash], ['a', 'sig-a']);
  id.identify(null);
  assert.deepEqual([id.userId, id.userHash], ['a', 'sig-a']);
  id.identify('a');
  assert.equal(id.userHash, 'sig-a');
  id.identify('b');
  assert.deepEqual([id.userId, id.userHash], ['b', null]);
});

test('reset: a new anonymous id, no user, the old cookie dropped', () => {
  const store = fakeStore({ cookie: 'old-aid' });
  const id = createIdentity(store, () => 'new-aid');
  id.mode('granted');
  id.identify('42', 'sig');
  id.reset();
  assert.deepEqual([id.anonymousId, id.userId, id.userHash], ['new-aid', null, null]);
  assert.deepEqual(store.dropped, [AID]);
  assert.deepEqual(Object.fromEntries(store.map), { kairos_aid: 'new-aid' });
});

test('denied erases what is stored, cookie included, and writes nothing more', () => {
  const store = fakeStore({ cookie: 'aid-c' });
  const id = createIdentity(store, counter);
  id.mode('granted');
  id.identify('42');
  id.mode('denied');
  assert.equal(store.map.size, 0);
  assert.deepEqual(store.dropped, [AID]);
  id.identify('43');
  assert.equal(store.map.size, 0);
});
