// Small helpers. Nothing here lets an error reach the page.

/** fn(...args), or undefined if it throws: site callbacks and browser quirks must not break us. */
export function safe(fn, ...args) {
  try {
    return fn(...args);
  } catch (e) {
    return undefined;
  }
}

/** addEventListener with an error-swallowing listener. */
export function on(target, type, fn, capture) {
  safe(() => target.addEventListener(type, (e) => safe(fn, e), capture));
}

export const isObject = (v) => !!v && typeof v === 'object' && !Array.isArray(v);

export const obj = (v) => (isObject(v) ? v : {});

/** Runs fn once the document is parsed (slots and <body> exist). */
export function whenParsed(doc, fn) {
  if (doc.readyState === 'loading') on(doc, 'DOMContentLoaded', fn);
  else fn();
}
