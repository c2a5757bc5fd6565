import test from 'node:test';
import assert from 'node:assert/strict';
import { createStorage, domains } from '../src/storage.js';
import { fakeStorage, fakeLocation } from '../test-support/fake-dom.js';

test('domains: the host and every parent', () => {
  assert.deepEqual(domains('www.shop.example.co.uk'), ['www.shop.example.co.uk', 'shop.example.co.uk', 'example.co.uk', 'co.uk', 'uk']);
  assert.deepEqual(domains('localhost'), ['localhost']);
});

test('localStorage access never throws, even when blocked', () => {
  const ls = fakeStorage();
  const win = { localStorage: ls, document: { cookie: '' }, location: fakeLocation('https://a.example.com/') };
  const s = createStorage(win);
  assert.notEqual(s.set('k', 'v'), false);
  assert.equal(s.get('k'), 'v');
  ls.broken = true;
  assert.equal(s.get('k'), null);
  assert.equal(s.set('k', 'w'), false);
  assert.doesNotThrow(() => s.del('k'));
  const noStorage = createStorage({ get localStorage() { throw new Error('SecurityError'); }, document: {}, location: win.location });
  assert.equal(noStorage.get('k'), null);
  assert.equal(noStorage.set('k', 'v'), false);
});

test('cookies: read by exact name, decoded', () => {
  const win = { document: { cookie: 'x_kairos_aid=no; kairos_aid=abc%2D1; other=2' }, location: fakeLocation('https://a.example.com/') };
  const s = createStorage(win);
  assert.equal(s.cookie('kairos_aid'), 'abc-1');
  assert.equal(s.cookie('missing'), null);
  const broken = createStorage({ document: { get cookie() { throw new Error('sandboxed'); } }, location: win.location });
  assert.equal(broken.cookie('kairos_aid'), null);
});

test('dropCookie expires the cookie host-only and on every parent domain', () => {
  const written = [];
  const win = { document: { set cookie(v) { written.push(v); }, get cookie() { return ''; } }, location: fakeLocation('https://www.example.com/') };
  createStorage(win).dropCookie('kairos_aid');
  assert.deepEqual(written, [
    'kairos_aid=;path=/;max-age=0',
    'kairos_aid=;path=/;max-age=0;domain=www.example.com',
    'kairos_aid=;path=/;max-age=0;domain=example.com',
    'kairos_aid=;path=/;max-age=0;domain=com',
  ]);
});
