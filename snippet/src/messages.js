// In-app messages: banner, modal or toast. Text goes in with textContent only;
// a call to action is an <a> whose href must be http(s) or relative.

import { on, safe } from './util.js';

export const TYPES = ['banner', 'modal', 'toast'];

/** The absolute http(s) URL for url (a relative one resolved against base), or null. */
export function safeHref(url, base) {
  try {
    const u = new URL(url, base);
    return typeof url === 'string' && /\S/.test(url) && /^https?:$/.test(u.protocol) ? u.href : null;
  } catch (e) {
    return null;
  }
}

/**
 * Renders msg = {rule, type, title, body, cta: {label, url}} at the end of doc.body.
 * emit(name) reports 'Message Shown', 'Message Clicked', 'Message Dismissed'.
 * Returns the root element.
 */
export function showMessage(doc, msg, base, emit) {
  const modal = msg.type === 'modal';
  const make = (tag, parent, text) => {
    const e = doc.createElement(tag);
    e.textContent = text || '';
    if (parent) parent.appendChild(e);
    return e;
  };
  const attr = (e, name, value) => e.setAttribute(name, value);
  const root = make('div');
  const box = modal ? make('div', root) : root;
  const previous = doc.activeElement;
  const focusable = [];
  let open = true;

  const close = (name) => {
    if (!open) return;
    open = false;
    emit(name);
    root.remove();
    if (modal) safe(() => previous.focus());
  };

  box.className = 'kairos-msg kairos-' + msg.type;
  if (modal) {
    root.className = 'kairos-overlay';
    attr(box, 'role', 'dialog');
    attr(box, 'aria-modal', 'true');
    box.tabIndex = -1;
  } else {
    attr(box, 'role', 'status');
    attr(box, 'aria-live', 'polite');
  }
  if (msg.title) {
    make('h2', box, msg.title);
    if (modal) attr(box, 'aria-label', msg.title);
  }
  if (msg.body) make('p', box, msg.body);
  const cta = msg.cta || {};
  const href = safeHref(cta.url, base);
  if (href) {
    const a = make('a', box, cta.label || href);
    a.href = href;
    on(a, 'click', () => close('Message Clicked'));
    focusable.push(a);
  }
  const x = make('button', box, '\u00d7');
  x.type = 'button';
  x.className = 'kairos-x';
  attr(x, 'aria-label', 'Close');
  on(x, 'click', () => close('Message Dismissed'));
  focusable.push(x);

  on(root, 'keydown', (e) => {
    if (e.key === 'Escape') close('Message Dismissed');
    else if (modal && e.key === 'Tab') {
      // Keep focus inside the dialog: move it ourselves, wrapping around.
      const n = focusable.length;
      e.preventDefault();
      focusable[(focusable.indexOf(doc.activeElement) + (e.shiftKey ? n - 1 : 1)) % n].focus();
    }
  });

  doc.body.appendChild(root);
  emit('Message Shown');
  if (modal) focusable[0].focus();
  return root;
}
