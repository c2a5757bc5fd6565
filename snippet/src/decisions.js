// Applying the edge's answer to the page: slots and messages. The DOM work
// goes through the document it is given, so tests use a fake one.

import { TYPES, showMessage } from './messages.js';
import { isObject, obj, safe } from './util.js';

/** The answer with its four parts present: {slots: {}, messages: [], push: [], segments: []}. */
export const normalize = (answer) => Object.assign({ slots: {}, messages: [], push: [], segments: [] }, obj(answer));

/**
 * Fills every element marked data-kairos-slot="name" that has a slot in the answer:
 * html → innerHTML (the edge escaped the profile values in it; the rest is the
 * marketer's own markup), json → a bubbling 'kairos:slot' CustomEvent with the
 * value as detail, for the site to render. skipHtml: leave html slots alone
 * (their default content is already on screen).
 */
export function applySlots(doc, slots, skipHtml, CustomEvent) {
  for (const el of doc.querySelectorAll('[data-kairos-slot]')) {
    // Inherited names ("constructor", "__proto__") find no html and no json.
    const slot = slots[el.getAttribute('data-kairos-slot')];
    if (!isObject(slot)) continue;
    if (typeof slot.html === 'string') {
      if (!skipHtml) el.innerHTML = slot.html;
    } else if ('json' in slot) {
      el.dispatchEvent(new CustomEvent('kairos:slot', { detail: slot.json, bubbles: true }));
    }
  }
}

/**
 * show(messages): renders each message of a known type, a rule's message once
 * per page load (an SPA's next page view does not bring back what was
 * dismissed), and one modal at a time. track(event, properties) reports
 * impressions, clicks and dismissals with {rule, type}.
 */
export function createMessenger(doc, base, track) {
  const seen = new Set();
  return (messages) => {
    for (const m of messages) {
      if (!TYPES.includes(m.type) || seen.has(m.rule) || (m.type === 'modal' && doc.querySelector('.kairos-overlay'))) continue;
      seen.add(m.rule);
      safe(showMessage, doc, m, base(), (event) => track(event, { rule: m.rule, type: m.type }));
    }
  };
}
