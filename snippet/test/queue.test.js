import test from 'node:test';
import assert from 'node:assert/strict';
import { replayOrder } from '../src/queue.js';

// What the stub stores: real `arguments` objects.
const args = function () { return arguments; };

test('config and consent calls replay first, everything else in the order made', () => {
  const q = [
    args('page'),
    args('track', 'A', { n: 1 }),
    args('consent', 'denied'),
    args('identify', '42'),
    args('config', { timeout: 500 }),
    args('track', 'B'),
    args('consent', 'granted'),
  ];
  assert.deepEqual(replayOrder(q), [
    ['consent', 'denied'],
    ['config', { timeout: 500 }],
    ['consent', 'granted'],
    ['page'],
    ['track', 'A', { n: 1 }],
    ['identify', '42'],
    ['track', 'B'],
  ]);
});

test('the calls come back as plain arrays, an empty queue as none', () => {
  const [call] = replayOrder([args('track', 'X')]);
  assert.ok(Array.isArray(call));
  assert.deepEqual(replayOrder([]), []);
});
