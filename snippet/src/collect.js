// Automatic collection: SPA navigation, time on page while visible, and
// clicks / form submits on elements marked data-kairos-event="Name".

import { on, safe } from './util.js';

const PROP = 'data-kairos-prop-';

/** Counts milliseconds only while visible() is true; take() returns the count and restarts it. */
export function visibleTimer(now, visible) {
  let total = 0;
  let since = now(); // start of the current visible stretch (meaningless while hidden)
  return {
    /** Call on every visibilitychange. */
    update() {
      const t = now();
      if (!visible()) total += t - since;
      since = t;
    },
    take() {
      const t = now();
      const ms = total + (visible() ? t - since : 0);
      total = 0;
      since = t;
      return ms;
    },
  };
}

/** Numbers stay numbers ("42", "-1.5"); everything else, including "007", stays a string. */
const value = (v) => (/^-?(0|[1-9]\d{0,14})(\.\d+)?$/.test(v) ? Number(v) : v);

/** The track call an element asks for: [name, properties] from data-kairos-event and data-kairos-prop-* (dashes become underscores). */
export function elementEvent(el) {
  const name = el.getAttribute('data-kairos-event');
  if (!name) return null;
  const props = {};
  for (const a of el.attributes) {
    if (a.name.indexOf(PROP) === 0) props[a.name.slice(PROP.length).replace(/-/g, '_')] = value(a.value);
  }
  return [name, props];
}

/** track(name, props) for clicks on (or inside) marked elements and submits of marked forms. */
export function watchElements(doc, track) {
  const send = (found) => found && track(found[0], found[1]);
  // Capture phase: a site's stopPropagation does not hide the event. Odd targets just throw, caught by on().
  on(doc, 'click', (e) => {
    const el = e.target.closest('[data-kairos-event]');
    // A marked form reports its submit, not every click inside it.
    if (el && el.tagName !== 'FORM') send(elementEvent(el));
  }, true);
  on(doc, 'submit', (e) => send(elementEvent(e.target)), true);
}

/** Calls changed() after pushState / replaceState / popstate (debounced, so the new title is set). */
export function watchHistory(win, changed, delay = 100) {
  const h = win.history;
  let timer = 0;
  const later = () => {
    win.clearTimeout(timer);
    timer = win.setTimeout(() => safe(changed), delay);
  };
  for (const m of ['pushState', 'replaceState']) {
    const orig = h[m];
    h[m] = function () {
      const r = orig.apply(this, arguments);
      safe(later);
      return r;
    };
  }
  on(win, 'popstate', later);
}
