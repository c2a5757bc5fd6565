// Getting events to the edge.
//   send(event)  one event through POST /v1/e; resolves with the edge's answer (decisions) or null
//   push(event)  batched through POST /v1/b, every second or every 20 events
//   leave()      the page is going away: what is still batched goes by navigator.sendBeacon
// Bodies are JSON sent as text/plain (a string body's default type) with
// writeKey inside: a CORS "simple" request, no preflight. Batched events go
// through the stored outbox (retry.js) and leave it only once the edge has
// answered; a failure that may pass (network, 429, 5xx) is retried with
// exponential backoff, any other 4xx is dropped since it cannot succeed. A
// refused write key or origin (401, 403) is said once on the console, with the
// edge's reason: otherwise a site owner sees only that nothing happens.

import { backoff } from './retry.js';
import { safe } from './util.js';

export const BATCH = 20;
export const INTERVAL = 1000;

/** What to do after an answer with this HTTP status (0: no answer). */
export const verdict = (status) =>
  status > 199 && status < 300 ? 'ok' : !status || status === 429 || status > 499 ? 'retry' : 'drop';

/**
 * win: {fetch, navigator: {sendBeacon, onLine}, setTimeout, clearTimeout, console};
 * store: the outbox (retry.js); now and random: clock and dice.
 */
export function createTransport(win, url, key, store, now = Date.now, random = Math.random) {
  const nav = win.navigator;
  const online = () => nav.onLine !== false;
  let out = [];
  let timer = 0;
  let retryAt = 0;
  let attempt = 0;
  let busy = false;
  let told = 0;

  /** The request body; sets sentAt on the events. One event goes as itself, several as a batch. */
  const body = (events, single) => {
    const sentAt = new Date(now()).toISOString();
    for (const e of events) e.sentAt = sentAt;
    return JSON.stringify(single ? Object.assign({ writeKey: key }, events[0]) : { writeKey: key, batch: events, sentAt });
  };

  /** Resolves with [verdict, the parsed answer]; never rejects. */
  const post = (path, data) =>
    Promise.resolve()
      .then(() => win.fetch(url + path, { method: 'POST', body: data, credentials: 'include', keepalive: data.length < 60000 }))
      .then((r) => {
        const v = verdict(r.status);
        return r
          .json()
          .catch(() => ({}))
          .then((j) => {
            // The first 401 or 403: the edge's reason on the console, once per page.
            told || (r.status - 401) * (r.status - 403) || safe(() => win.console.warn('Kairos refused:', (told = r.status), j.reason));
            return v === 'ok' ? [v, j] : [v];
          });
      })
      .catch(() => ['retry']);

  function settled(v) {
    if (v === 'retry') {
      if (now() >= retryAt) attempt++;
      const delay = backoff(attempt, random);
      retryAt = now() + delay;
      win.setTimeout(drain, delay);
    } else {
      attempt = retryAt = 0;
      drain();
    }
  }

  /** Sends the oldest stored events, a batch at a time, until none are left or a send fails. */
  function drain() {
    const batch = store.all().slice(0, BATCH);
    if (busy || now() < retryAt || !online() || !batch.length) return;
    busy = true;
    post('/v1/b', body(batch)).then(([v]) => {
      busy = false;
      if (v !== 'retry') store.remove(batch.map((e) => e.messageId));
      settled(v);
    });
  }

  function flush() {
    win.clearTimeout(timer);
    timer = 0;
    if (out.length) store.add(out.splice(0));
    drain();
  }

  return {
    send: (event) =>
      post('/v1/e', body([event], true)).then(([v, answer]) => {
        if (v === 'retry') store.add([event]);
        settled(v);
        return answer || null;
      }),
    push(event) {
      if (out.push(event) >= BATCH) flush();
      else if (!timer) timer = win.setTimeout(flush, INTERVAL);
    },
    flush,
    /** The network is back: forget the backoff. */
    online() {
      attempt = retryAt = 0;
      flush();
    },
    /** pagehide / hidden: batched events (fewer than BATCH) go by sendBeacon; what it refuses waits in the outbox. */
    leave() {
      win.clearTimeout(timer);
      timer = 0;
      const batch = out.splice(0);
      if (batch.length && !(online() && safe(() => nav.sendBeacon(url + '/v1/b', body(batch))))) store.add(batch);
    },
    /** Consent withdrawn: forget everything not yet sent. */
    clear() {
      out = [];
      store.clear();
    },
  };
}
