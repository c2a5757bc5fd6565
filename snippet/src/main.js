// The core (served by the edge as /k.js): wires the modules together and
// replaces the stub's window.kairos with the real one.
//
//   kairos('page', name?, properties?)
//   kairos('track', event, properties?)
//   kairos('identify', userId?, traits?, {userHash}?)
//   kairos('alias', newId, {userHash}?)
//   kairos('reset')
//   kairos('consent', 'granted' | 'denied' | 'pending')
//   kairos('ready', callback)        callback(decisions) once the first answer is in
//   kairos('config', {timeout, consent, page})
//
// A call never throws, whatever it is given.

import { isBot } from './bot.js';
import { createConsent } from './consent.js';
import { context, page as pageInfo, pageUrl } from './context.js';
import { visibleTimer, watchElements, watchHistory } from './collect.js';
import { applySlots, createMessenger, normalize } from './decisions.js';
import { createIdentity, uuid } from './ids.js';
import { replayOrder } from './queue.js';
import { createRetryStore } from './retry.js';
import { createStorage } from './storage.js';
import { PENDING, injectStyle } from './style.js';
import { createTransport } from './transport.js';
import { isObject, obj, on, safe, whenParsed } from './util.js';

export function start(win) {
  const doc = win.document;
  const nav = win.navigator;
  const stub = win.kairos || {};
  if (stub.l || !stub.u) return; // already running, or no stub to say where the edge is
  stub.l = 1; // the stub's own timer leaves the reveal to us from now on
  const script = doc.currentScript || {};
  const url = stub.u; // no trailing slash, as in the stub's <edge>/k.js
  const key = stub.k;
  const queue = stub.q || [];
  const cfg = Object.assign({ timeout: 800, consent: 'granted', page: true }, obj(stub.o));
  const root = doc.documentElement;
  const reveal = () => safe(() => root.classList.remove(PENDING));
  const now = Date.now;
  let t0 = stub.t || now();
  let started = false;
  let ids, transport, gate, visible, show;
  let lastPage = null; // the URL of the last page view
  let referrer = null; // null: document.referrer
  let firstSent = false;
  let timedOut = false;
  let latest = null;
  const waiting = [];

  const api = (win.kairos = function () {
    if (started) safe(call, [...arguments]);
    else queue.push(arguments);
  });
  api.l = 1;

  /** The edge's answer to a page view (null: none came); first: the page's first decision. */
  function decide(answer, first) {
    if (!answer && !first) return;
    const d = normalize(answer);
    whenParsed(doc, () => {
      // A first answer after the timeout leaves the default content, already on screen, alone.
      safe(applySlots, doc, d.slots, first && timedOut, win.CustomEvent);
      if (first) reveal();
      safe(show, d.messages);
      latest = d;
      waiting.splice(0).forEach((cb) => safe(cb, d));
      if (answer) safe(() => win.dispatchEvent(new win.CustomEvent('kairos:decisions', { detail: d })));
    });
  }

  function deliver(e) {
    if (e.type !== 'page') return transport.push(e);
    const first = !firstSent;
    firstSent = true;
    transport.send(e).then((answer) => decide(answer, first));
  }

  function emit(type, fields, userHash) {
    const ctx = context(win, referrer);
    ctx.userHash = userHash || ids.userHash || undefined;
    const e = Object.assign(
      { type, messageId: uuid(win.crypto), anonymousId: ids.anonymousId, userId: ids.userId || undefined, properties: {} },
      fields,
      { context: ctx, timestamp: new Date().toISOString() },
    );
    // A JSON copy: undefined fields go, what the site changes later stays out,
    // and what JSON cannot carry (cycles, BigInt) fails here, inside the call.
    gate.submit(JSON.parse(JSON.stringify(e)));
  }

  const methods = {
    config: (o) => Object.assign(cfg, obj(o)),
    consent: (state) => gate.set(state),
    ready: (cb) => (latest ? safe(cb, latest) : waiting.push(cb)),
    page(name, props) {
      if (isObject(name)) [props, name] = [name, null];
      const here = pageUrl(win.location);
      if (lastPage != null && lastPage !== here) referrer = lastPage;
      const p = Object.assign(pageInfo(win, referrer), obj(props));
      const ms = visible.take();
      if (lastPage != null && ms) p.visible_ms = ms;
      lastPage = here;
      emit('page', name != null ? { name: String(name), properties: p } : { properties: p });
    },
    track(event, props) {
      if (event) emit('track', { event: String(event), properties: obj(props) });
    },
    identify(userId, traits, options) {
      if (isObject(userId)) [userId, traits, options] = [null, userId, traits];
      ids.identify(userId, obj(options).userHash);
      emit('identify', { traits: obj(traits) });
    },
    alias(newId, options) {
      if (newId) emit('alias', { userId: String(newId), previousId: ids.userId || ids.anonymousId }, obj(options).userHash);
    },
    reset: () => ids.reset(),
    // Web Push, once the site has the visitor's permission for notifications: the
    // service worker (sw.js) subscribes with the site's key and tells the edge.
    push(sw) {
      if (gate.state === 'granted' && nav.serviceWorker)
        return nav.serviceWorker.register((sw || '/kairos-sw.js') + '?' + new URLSearchParams({ u: url, k: key, a: ids.anonymousId }));
    },
  };

  // Unknown names throw here, inside safe(); inherited ones ("toString") do nothing.
  const call = (args) => methods[args[0]](...args.slice(1));

  function init() {
    const calls = replayOrder(queue);
    queue.length = 0;
    calls.forEach((c) => c[0] === 'config' && safe(call, c));
    const bot = isBot(nav);
    const store = createStorage(win);
    ids = createIdentity(store, () => uuid(win.crypto));
    transport = createTransport(win, url, key, createRetryStore(store));
    const changed = (state) => {
      ids.mode(state);
      if (state === 'granted') transport.flush();
      if (state === 'denied') {
        transport.clear();
        if (!latest) decide(null, true);
      }
    };
    gate = createConsent(bot ? 'denied' : cfg.consent, deliver, changed);
    if (bot) gate.set = () => false;
    visible = visibleTimer(now, () => doc.visibilityState !== 'hidden');
    show = createMessenger(doc, () => win.location.href, methods.track);
    injectStyle(doc, script.nonce);

    // The stub hid the slots; they show on the first answer, an error, or the timeout.
    if (bot) decide(null, true);
    else changed(gate.state);
    if (cfg.timeout > 0) {
      win.setTimeout(() => {
        timedOut = true;
        reveal();
      }, cfg.timeout - (now() - t0));
    } else reveal();

    started = true;
    calls.forEach((c) => c[0] !== 'config' && safe(call, c));
    if (bot) return;
    if (cfg.page && !calls.some((c) => c[0] === 'page')) {
      methods.page();
      watchHistory(win, () => cfg.page && pageUrl(win.location) !== lastPage && methods.page());
    }
    watchElements(doc, methods.track);
    on(doc, 'visibilitychange', () => {
      visible.update();
      if (doc.visibilityState === 'hidden') transport.leave();
    });
    on(win, 'pagehide', () => {
      const ms = visible.take();
      if (lastPage != null && ms) methods.track('Page Left', { visible_ms: ms });
      transport.leave();
    });
    on(win, 'online', () => transport.online());
  }

  // A prerendered page is not a visit until it is shown.
  if (doc.prerendering) {
    on(doc, 'prerenderingchange', () => {
      t0 = now();
      init();
    });
  } else init();
}

if (typeof window !== 'undefined') safe(start, window);
