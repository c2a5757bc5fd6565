/* Kairos Edge inline stub: paste into <head>, replacing the edge URL and the
 * write key at the bottom. It queues calls until the core (<edge>/k.js) runs,
 * hides only [data-kairos-slot] elements while the first decision is pending
 * (at most `timeout` ms, and not at all once the core fails to load), copies
 * the page's CSP nonce to what it creates, and never throws.
 * An optional fifth argument holds options: {timeout: 800, consent: 'pending', page: false}.
 */
!function (w, d, u, k, o) {
  if (w.kairos) return;
  var f = w.kairos = function () { f.q.push(arguments); };
  f.q = []; f.u = u; f.k = k; f.o = o = o || {}; f.t = +new Date();
  try {
    var n = (d.currentScript || 0).nonce, l = d.documentElement.classList, p = 'kairos-wait',
      r = function () { l.remove(p); }, s = d.createElement('style');
    if (o.timeout !== 0) {
      s.nonce = n;
      s.textContent = '.' + p + ' [data-kairos-slot]{visibility:hidden}';
      d.head.append(s);
      l.add(p);
      // Once the core runs (f.l), it decides when to reveal.
      setTimeout(function () { f.l || r(); }, o.timeout || 800);
    }
    s = d.createElement('script'); // async, being inserted by script
    s.nonce = n;
    s.src = u + '/k.js';
    s.onerror = r;
    d.head.append(s);
  } catch (x) { /* the timer above still reveals the slots */ }
}(window, document, 'https://edge.example.com', 'WRITE_KEY');
