// The one stylesheet: hides pending slots (visibility, not display, so the
// layout does not move) and styles messages. Injected once with the page's
// CSP nonce.

export const PENDING = 'kairos-wait';

const FIXED = 'position:fixed;z-index:2147483000;';

// Messages take the page's font; only layout and contrast are set.
export const CSS =
  '.' + PENDING + ' [data-kairos-slot]{visibility:hidden}' +
  '.kairos-msg{' + FIXED + 'box-sizing:border-box;padding:16px 40px 16px 16px;color:#111;background:#fff;box-shadow:0 0 9px #0006}' +
  '.kairos-banner{top:0;left:0;right:0}' +
  '.kairos-toast{right:16px;bottom:16px;max-width:360px}' +
  '.kairos-overlay{' + FIXED + 'top:0;left:0;right:0;bottom:0;background:#0008}' +
  '.kairos-modal{position:relative;width:calc(100% - 32px);max-width:480px;margin:15vh auto}' +
  '.kairos-msg h2{margin:0;font-size:1.2em}' +
  '.kairos-x{position:absolute;top:8px;right:8px;border:0;background:none;font-size:20px}';

export function injectStyle(doc, nonce) {
  const s = doc.createElement('style');
  if (nonce) s.nonce = nonce;
  s.textContent = CSS;
  doc.head.appendChild(s);
}
