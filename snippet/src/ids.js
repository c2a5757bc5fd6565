// Identifiers: the anonymous id (the cookie kairos_aid that the edge sets,
// mirrored in localStorage), the user id and its signature (localStorage),
// and a fresh id per event.

export const AID = 'kairos_aid';
const KEYS = [AID, 'kairos_uid', 'kairos_uh'];

/** A random UUID v4 from crypto.getRandomValues (Math.random only if crypto is missing). */
export function uuid(crypto) {
  let b = new Uint8Array(16);
  try {
    crypto.getRandomValues(b);
  } catch (e) {
    b = b.map(() => Math.random() * 256);
  }
  b[6] = (b[6] & 15) | 64; // version 4
  b[8] = (b[8] & 63) | 128; // variant 10
  return Array.from(b, (x) => (x + 256).toString(16).slice(1))
    .join('')
    .replace(/(.{8})(.{4})(.{4})(.{4})/, '$1-$2-$3-$4-');
}

/** Only ids the edge could have set or we generated: no separators, no markup, bounded. */
export const validId = (v) => (typeof v === 'string' && /^[\w.:-]{1,128}$/.test(v) ? v : null);

/**
 * The visitor's identity. store: storage.js; newId: () => string.
 * Nothing is written until mode('granted'); mode('denied') erases what is stored.
 * The cookie wins over localStorage: the edge keeps it equal to the
 * anonymousId it last received, so a reset reaches it with the next event.
 */
export function createIdentity(store, newId) {
  let granted = false;
  const id = {
    anonymousId: validId(store.cookie(AID)) || validId(store.get(AID)) || newId(),
    userId: store.get(KEYS[1]),
    userHash: store.get(KEYS[2]),
    identify(userId, userHash) {
      if (userId || userId === 0) {
        if (id.userId !== (userId = String(userId))) id.userHash = null;
        id.userId = userId;
      }
      if (userHash) id.userHash = String(userHash);
      save();
    },
    reset() {
      id.anonymousId = newId();
      id.userId = id.userHash = null;
      store.dropCookie(AID); // or the edge's cookie would bring the old id back
      save();
    },
    mode(state) {
      granted = state === 'granted';
      save();
      if (state === 'denied') {
        KEYS.forEach(store.del);
        store.dropCookie(AID);
      }
    },
  };
  const save = () =>
    granted && [id.anonymousId, id.userId, id.userHash].forEach((v, i) => (v ? store.set(KEYS[i], v) : store.del(KEYS[i])));
  return id;
}
