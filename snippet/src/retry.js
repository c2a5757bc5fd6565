// The outbox: events waiting for the edge, kept in localStorage so they
// survive navigation and are sent again after a failure (network error, 429,
// 5xx). Capped: the oldest go first. Every event keeps its messageId, so one
// sent twice is counted once.

export const MAX_EVENTS = 200;
export const MAX_BYTES = 65536;
const KEY = 'kairos_q';

/** Delay before retry number `attempt` (1, 2, ...): 1 s doubling up to 60 s, jittered to 50–100 %. */
export function backoff(attempt, random) {
  const full = Math.min(60000, 1000 * 2 ** (attempt - 1));
  return Math.round(full / 2 + (random() * full) / 2);
}

/** The newest events that fit both caps (bytes counted as UTF-16 code units of the JSON). */
export function cap(list, maxEvents = MAX_EVENTS, maxBytes = MAX_BYTES) {
  list = list.slice(-maxEvents);
  while (list.length && JSON.stringify(list).length > maxBytes) list.shift();
  return list;
}

/**
 * storage: {get, set, del} (storage.js; set answers false when it failed).
 * When localStorage is unusable (blocked, full) the outbox lives in memory.
 */
export function createRetryStore(storage) {
  let mem = [];
  const read = () => {
    try {
      const list = JSON.parse(storage.get(KEY)) || mem;
      return Array.isArray(list) ? list : [];
    } catch (e) {
      return [];
    }
  };
  const write = (list) => {
    mem = list;
    // A stale copy left behind by a failed write would be sent again and again.
    if (storage.set(KEY, JSON.stringify(list)) === false) storage.del(KEY);
  };
  return {
    all: read,
    add(events) {
      const seen = new Set();
      write(cap(read().concat(events).filter((e) => !seen.has(e.messageId) && seen.add(e.messageId))));
    },
    remove(ids) {
      write(read().filter((e) => !ids.includes(e.messageId)));
    },
    // Nothing written: after a consent denial the snippet leaves no storage behind.
    clear: () => {
      mem = [];
      storage.del(KEY);
    },
  };
}
