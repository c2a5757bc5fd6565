import test from 'node:test';
import assert from 'node:assert/strict';
import { keyBytes, safeLink } from '../src/push.js';

test('a base64url VAPID key decodes to its 65 bytes', () => {
  const raw = Uint8Array.from({ length: 65 }, (_, i) => (i * 37 + 4) % 256);
  const text = Buffer.from(raw).toString('base64url');
  assert.ok(!text.includes('='));
  assert.deepEqual(keyBytes(text), raw);
});

test('only web links and site paths open from a notification', () => {
  for (const ok of ['https://shop.example/cart', 'http://x.test', '/demo/cart']) assert.equal(safeLink(ok), true, ok);
  for (const bad of ['javascript:alert(1)', '//evil.test/x', 'data:text/html,x', '', null, 5]) {
    assert.equal(safeLink(bad), false, String(bad));
  }
});
