// Consent gate. pending: events wait in memory (nothing is sent or stored);
// granted: they go out; denied: they are dropped and everything queued is cleared.

export const STATES = ['pending', 'granted', 'denied'];
const HOLD_MAX = 200;

/** deliver(item) sends one item; changed(state) runs on every valid change (and not for the initial state). */
export function createConsent(initial, deliver, changed) {
  let state = STATES.includes(initial) ? initial : 'granted';
  let held = [];
  return {
    get state() { return state; },
    submit(item) {
      if (state === 'granted') deliver(item);
      else if (state === 'pending' && held.length < HOLD_MAX) held.push(item);
    },
    set(next) {
      if (!STATES.includes(next)) return;
      state = next;
      changed(next);
      if (next !== 'pending') {
        const release = held;
        held = [];
        if (next === 'granted') release.forEach(deliver);
      }
    },
  };
}
