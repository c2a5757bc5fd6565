import test from 'node:test';
import assert from 'node:assert/strict';
import { createConsent } from '../src/consent.js';

function gate(initial) {
  const sent = [];
  const changes = [];
  const g = createConsent(initial, (e) => sent.push(e), (s) => changes.push(s));
  return { g, sent, changes };
}

test('granted sends at once', () => {
  const { g, sent } = gate('granted');
  g.submit(1);
  assert.deepEqual(sent, [1]);
  assert.equal(g.state, 'granted');
});

test('pending holds in memory; granting sends what was held, in order', () => {
  const { g, sent, changes } = gate('pending');
  g.submit(1);
  g.submit(2);
  assert.deepEqual(sent, []);
  g.set('granted');
  assert.deepEqual(sent, [1, 2]);
  assert.deepEqual(changes, ['granted']);
  g.submit(3);
  assert.deepEqual(sent, [1, 2, 3]);
});

test('denying drops what was held and everything after', () => {
  const { g, sent, changes } = gate('pending');
  g.submit(1);
  g.set('denied');
  g.submit(2);
  g.set('granted');
  assert.deepEqual(sent, []);
  g.submit(3);
  assert.deepEqual(sent, [3]);
  assert.deepEqual(changes, ['denied', 'granted']);
});

test('consent can be withdrawn at run time', () => {
  const { g, sent } = gate('granted');
  g.submit(1);
  g.set('denied');
  g.submit(2);
  assert.deepEqual(sent, [1]);
  assert.equal(g.state, 'denied');
});

test('unknown states are ignored; an unknown initial state means granted', () => {
  const { g, changes } = gate('pending');
  g.set('yes');
  g.set(undefined);
  assert.equal(g.state, 'pending');
  assert.deepEqual(changes, []);
  assert.equal(gate('whatever').g.state, 'granted');
});

test('pending holds at most 200 events', () => {
  const { g, sent } = gate('pending');
  for (let i = 0; i < 250; i++) g.submit(i);
  g.set('granted');
  assert.equal(sent.length, 200);
  assert.equal(sent[0], 0);
});
