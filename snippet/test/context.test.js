import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { campaign, context, page, pageUrl } from '../src/context.js';
import { VERSION } from '../src/version.js';
import { fakeWindow } from '../test-support/fake-dom.js';

test('UTM parameters map to Segment campaign names', () => {
  assert.deepEqual(
    campaign('?utm_source=news&utm_medium=email&utm_campaign=spring%20sale&utm_term=shoes&utm_content=hero&x=1'),
    { source: 'news', medium: 'email', name: 'spring sale', term: 'shoes', content: 'hero' },
  );
});

test('click ids go to the campaign too; parameter names are case-insensitive', () => {
  assert.deepEqual(campaign('?gclid=G1&fbclid=F1&msclkid=M1&UTM_Source=X'), { gclid: 'G1', fbclid: 'F1', msclkid: 'M1', source: 'X' });
});

test('nothing to find: an empty campaign', () => {
  assert.deepEqual(campaign(''), {});
  assert.deepEqual(campaign('?utm_sourcex=1&gclidx=2&q=3'), {});
});

test('the page URL drops the fragment', () => {
  assert.equal(pageUrl({ href: 'https://a.example.com/p?q=1#top' }), 'https://a.example.com/p?q=1');
});

test('page and context fields', () => {
  const win = fakeWindow({ href: 'https://shop.example.com/cart?utm_medium=cpc&gclid=abc#x' });
  win.document.title = 'Cart';
  win.document.referrer = 'https://search.example.org/';
  assert.deepEqual(page(win), {
    url: 'https://shop.example.com/cart?utm_medium=cpc&gclid=abc',
    path: '/cart',
    referrer: 'https://search.example.org/',
    title: 'Cart',
    search: '?utm_medium=cpc&gclid=abc',
  });
  assert.equal(page(win, 'https://shop.example.com/').referrer, 'https://shop.example.com/');
  const ctx = context(win);
  assert.deepEqual(ctx.campaign, { medium: 'cpc', gclid: 'abc' });
  assert.deepEqual(ctx['library'], { name: 'kairos-snippet', version: VERSION });
  assert.deepEqual(ctx.screen, { width: 1440, height: 900 });
  assert.equal(ctx.locale, 'en-GB');
  assert.equal(ctx.timezone, Intl.DateTimeFormat().resolvedOptions().timeZone);
});

test('the library version is the package version', () => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url)));
  assert.equal(VERSION, pkg.version);
});
