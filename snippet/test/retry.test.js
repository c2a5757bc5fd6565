import test from 'node:test';
import assert from 'node:assert/strict';
import { backoff, cap, createRetryStore, MAX_BYTES, MAX_EVENTS } from '../src/retry.js';

const ev = (i, extra = {}) => ({ messageId: 'm' + i, type: 'track', event: 'E', ...extra });

function memStorage() {
  const map = new Map();
  return { map, failing: false, get: (k) => (map.has(k) ? map.get(k) : null), set(k, v) { if (this.failing) return false; map.set(k, v); }, del: (k) => void map.delete(k) };
}

test('backoff doubles from 1 s to a 60 s ceiling, jittered between half and all of it', () => {
  const low = [1, 2, 3, 4, 5, 6, 7, 8, 12].map((a) => backoff(a, () => 0));
  const high = [1, 2, 3, 4, 5, 6, 7, 8, 12].map((a) => backoff(a, () => 1));
  assert.deepEqual(high, [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
  assert.deepEqual(low, high.map((d) => d / 2));
  for (let i = 0; i < 100; i++) {
    const d = backoff(3, Math.random);
    assert.ok(d >= 2000 && d <= 4000, String(d));
  }
});

test('cap keeps the newest events within the count cap', () => {
  const list = Array.from({ length: MAX_EVENTS + 50 }, (_, i) => ev(i));
  const kept = cap(list);
  assert.equal(kept.length, MAX_EVENTS);
  assert.equal(kept[0].messageId, 'm50');
  assert.equal(kept.at(-1).messageId, 'm' + (MAX_EVENTS + 49));
});

test('cap keeps the newest events within the byte cap', () => {
  const big = 'x'.repeat(1000);
  const list = Array.from({ length: 100 }, (_, i) => ev(i, { properties: { big } }));
  const kept = cap(list);
  assert.ok(JSON.stringify(kept).length <= MAX_BYTES);
  assert.ok(kept.length >= 60 && kept.length < 100, String(kept.length));
  assert.equal(kept.at(-1).messageId, 'm99');
});

test('the store keeps each messageId once, in order, and removes by id', () => {
  const s = createRetryStore(memStorage());
  s.add([ev(1), ev(2)]);
  s.add([ev(2), ev(3)]);
  assert.deepEqual(s.all().map((e) => e.messageId), ['m1', 'm2', 'm3']);
  s.remove(['m1', 'm3']);
  assert.deepEqual(s.all().map((e) => e.messageId), ['m2']);
  s.clear();
  assert.deepEqual(s.all(), []);
});

test('the store survives a reload (a second store over the same storage sees the events)', () => {
  const storage = memStorage();
  createRetryStore(storage).add([ev(1)]);
  assert.deepEqual(createRetryStore(storage).all(), [ev(1)]);
});

test('the store applies the caps on add', () => {
  const s = createRetryStore(memStorage());
  for (let i = 0; i < MAX_EVENTS + 10; i++) s.add([ev(i)]);
  assert.equal(s.all().length, MAX_EVENTS);
  assert.equal(s.all()[0].messageId, 'm10');
});

test('without usable storage the store lives in memory; a failed write leaves no stale copy', () => {
  const storage = memStorage();
  const s = createRetryStore(storage);
  s.add([ev(1)]);
  storage.failing = true;
  s.add([ev(2)]);
  assert.equal(storage.map.has('kairos_q'), false);
  assert.deepEqual(s.all().map((e) => e.messageId), ['m1', 'm2']);
  s.remove(['m1']);
  assert.deepEqual(s.all().map((e) => e.messageId), ['m2']);
});

test('garbage in storage reads as an empty queue', () => {
  const storage = memStorage();
  storage.map.set('kairos_q', '{not json');
  assert.deepEqual(createRetryStore(storage).all(), []);
  storage.map.set('kairos_q', '{"a":1}');
  assert.deepEqual(createRetryStore(storage).all(), []);
});
