// A tiny fake of the browser objects the snippet touches, enough for unit
// tests under `node --test` (no browser). Selectors: '[attr]', '[attr="v"]',
// '.class', 'tag', and comma-separated lists of those.

export class FakeElement {
  constructor(doc, tag) {
    this.ownerDocument = doc;
    this.tagName = String(tag).toUpperCase();
    this.children = [];
    this.parentNode = null;
    this.listeners = [];
    this.attrs = new Map();
    this.text = '';
    this.html = null;
    const el = this;
    this.classList = {
      add: (c) => { if (!el.classList.contains(c)) el.className = (el.className + ' ' + c).trim(); },
      remove: (c) => { el.className = el.className.split(/\s+/).filter((x) => x && x !== c).join(' '); },
      contains: (c) => el.className.split(/\s+/).includes(c),
    };
  }
  get className() { return this.attrs.get('class') || ''; }
  set className(v) { this.attrs.set('class', String(v)); }
  get id() { return this.attrs.get('id') || ''; }
  set id(v) { this.attrs.set('id', String(v)); }
  get attributes() { return [...this.attrs].map(([name, value]) => ({ name, value })); }
  setAttribute(n, v) { this.attrs.set(n, String(v)); }
  getAttribute(n) { return this.attrs.has(n) ? this.attrs.get(n) : null; }
  hasAttribute(n) { return this.attrs.has(n); }
  removeAttribute(n) { this.attrs.delete(n); }
  get textContent() { return this.text + this.children.map((c) => c.textContent).join(''); }
  set textContent(v) { this.children.forEach((c) => (c.parentNode = null)); this.children = []; this.text = String(v); }
  get innerHTML() { return this.html; }
  set innerHTML(v) { this.children = []; this.text = ''; this.html = String(v); }
  appendChild(c) {
    if (c.parentNode) c.remove();
    c.parentNode = this;
    this.children.push(c);
    return c;
  }
  append(...cs) { cs.forEach((c) => this.appendChild(c)); }
  remove() {
    const p = this.parentNode;
    if (p) p.children = p.children.filter((c) => c !== this);
    this.parentNode = null;
  }
  get isConnected() {
    let n = this;
    while (n.parentNode) n = n.parentNode;
    return n === this.ownerDocument.documentElement;
  }
  focus() { this.ownerDocument.activeElement = this; }
  addEventListener(type, fn, capture) { this.listeners.push({ type, fn, capture: !!capture }); }
  removeEventListener(type, fn) { this.listeners = this.listeners.filter((l) => l.type !== type || l.fn !== fn); }
  /** Capture listeners from the top down, then bubbling ones from the target up (plain objects or real Events). */
  dispatchEvent(event) {
    try { if (!event.target) event.target = this; } catch (e) { /* a real Event: read-only */ }
    const path = [];
    for (let n = this; n; n = n.parentNode) path.push(n);
    if (this.isConnected) path.push(this.ownerDocument);
    const call = (node, capture) =>
      node.listeners.filter((l) => l.type === event.type && l.capture === capture).forEach((l) => l.fn.call(node, event));
    [...path].reverse().forEach((n) => call(n, true));
    const bubbles = event.bubbles !== false;
    path.forEach((n, i) => (i === 0 || bubbles) && call(n, false));
    return !event.defaultPrevented;
  }
  matches(selector) {
    return selector.split(',').some((one) => {
      const s = one.trim();
      let m;
      if ((m = /^\[([\w-]+)(?:="([^"]*)")?\]$/.exec(s))) return this.hasAttribute(m[1]) && (m[2] == null || this.getAttribute(m[1]) === m[2]);
      if ((m = /^\.([\w-]+)$/.exec(s))) return this.classList.contains(m[1]);
      return this.tagName === s.toUpperCase();
    });
  }
  closest(selector) {
    for (let n = this; n instanceof FakeElement; n = n.parentNode) if (n.matches(selector)) return n;
    return null;
  }
  querySelectorAll(selector) {
    const out = [];
    const walk = (n) => n.children.forEach((c) => { if (c.matches(selector)) out.push(c); walk(c); });
    walk(this);
    return out;
  }
  querySelector(selector) { return this.querySelectorAll(selector)[0] || null; }
}

export class FakeDocument {
  constructor() {
    this.listeners = [];
    this.documentElement = new FakeElement(this, 'html');
    this.head = this.documentElement.appendChild(new FakeElement(this, 'head'));
    this.body = this.documentElement.appendChild(new FakeElement(this, 'body'));
    this.activeElement = this.body;
    this.readyState = 'complete';
    this.visibilityState = 'visible';
    this.title = 'Home';
    this.referrer = '';
    this.cookie = '';
    this.currentScript = null;
  }
  createElement(tag) { return new FakeElement(this, tag); }
  addEventListener(type, fn, capture) { this.listeners.push({ type, fn, capture: !!capture }); }
  dispatchEvent(event) {
    this.listeners.filter((l) => l.type === event.type).forEach((l) => l.fn.call(this, event));
    return true;
  }
  querySelectorAll(s) { return this.documentElement.matches(s) ? [this.documentElement, ...this.documentElement.querySelectorAll(s)] : this.documentElement.querySelectorAll(s); }
  querySelector(s) { return this.querySelectorAll(s)[0] || null; }
  getElementById(id) { return this.querySelectorAll('[id="' + id + '"]')[0] || null; }
}

/** A Storage-like object over a Map; `broken` makes every call throw, as blocked storage does. */
export function fakeStorage(broken = false) {
  const map = new Map();
  const guard = (fn) => (...a) => { if (s.broken) throw new Error('SecurityError'); return fn(...a); };
  const s = {
    broken,
    map,
    getItem: guard((k) => (map.has(k) ? map.get(k) : null)),
    setItem: guard((k, v) => void map.set(k, String(v))),
    removeItem: guard((k) => void map.delete(k)),
  };
  return s;
}

/** Manual timers: nothing runs until advance(ms) or flush(). */
export function fakeTimers(clock = { now: 1_000_000 }) {
  let seq = 0;
  const pending = new Map();
  return {
    clock,
    pending,
    setTimeout(fn, ms = 0) {
      pending.set(++seq, { fn, at: clock.now + Math.max(0, ms || 0) });
      return seq;
    },
    clearTimeout(id) { pending.delete(id); },
    /** Moves the clock, running what falls due in order. */
    advance(ms) {
      const end = clock.now + ms;
      for (;;) {
        const due = [...pending].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0];
        if (!due) break;
        pending.delete(due[0]);
        clock.now = Math.max(clock.now, due[1].at);
        due[1].fn();
      }
      clock.now = end;
    },
  };
}

/** A fetch that records requests and answers from a handler: (url, init) => {status, body} or throws. */
export function fakeFetch(handler = () => ({ status: 200, body: { success: true } })) {
  const calls = [];
  const fetch = (url, init) => {
    calls.push({ url, init, body: JSON.parse(init.body) });
    return new Promise((resolve, reject) => {
      let r;
      try {
        r = handler(url, init);
      } catch (e) {
        reject(new TypeError('Failed to fetch'));
        return;
      }
      resolve({ status: r.status, json: () => Promise.resolve(r.body) });
    });
  };
  fetch.calls = calls;
  return fetch;
}

export function fakeLocation(href) {
  const loc = {};
  loc.assign = (h) => {
    const u = new URL(h, loc.href || undefined);
    Object.assign(loc, { href: u.href, pathname: u.pathname, search: u.search, hash: u.hash, hostname: u.hostname, protocol: u.protocol, origin: u.origin });
  };
  loc.assign(href);
  return loc;
}

/** A window with everything main.js uses. */
export function fakeWindow({ href = 'https://shop.example.com/products?utm_source=news', ua = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36', fetch, timers } = {}) {
  const document = new FakeDocument();
  timers = timers || fakeTimers();
  const beacons = [];
  const win = {
    document,
    location: fakeLocation(href),
    navigator: {
      userAgent: ua,
      language: 'en-GB',
      onLine: true,
      webdriver: false,
      sendBeacon: (url, body) => { beacons.push({ url, body: JSON.parse(body) }); return true; },
    },
    screen: { width: 1440, height: 900 },
    crypto: globalThis.crypto,
    CustomEvent: globalThis.CustomEvent,
    localStorage: fakeStorage(),
    fetch: fetch || fakeFetch(),
    setTimeout: (f, ms) => timers.setTimeout(f, ms),
    clearTimeout: (id) => timers.clearTimeout(id),
    listeners: [],
    addEventListener(type, fn) { win.listeners.push({ type, fn }); },
    dispatchEvent(event) { win.listeners.filter((l) => l.type === event.type).forEach((l) => l.fn(event)); return true; },
    history: {
      pushState(state, title, url) { win.location.assign(url); },
      replaceState(state, title, url) { if (url != null) win.location.assign(url); },
    },
  };
  win.timers = timers;
  win.beacons = beacons;
  return win;
}

/** Lets pending promise callbacks run. */
export const settle = () => new Promise((r) => setImmediate(r));
