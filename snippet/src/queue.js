// The stub's queue: calls made before the core ran, as `arguments` objects.

const first = (call) => call[0] === 'config' || call[0] === 'consent';

/**
 * The queued calls, as arrays, in the order to replay them: config and consent
 * first (they change how everything else is handled: a denial queued after a
 * page view still stops that page view), then the others in the order made.
 */
export function replayOrder(queue) {
  const calls = Array.from(queue, (args) => Array.from(args));
  return calls.filter(first).concat(calls.filter((c) => !first(c)));
}
