// Pure helpers of the service worker (sw.js), kept apart so they can be tested.

/** A base64url VAPID key as the bytes PushManager wants. */
export function keyBytes(text) {
  const b64 = (text + '==='.slice((text.length + 3) % 4)).replace(/-/g, '+').replace(/_/g, '/');
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

/** Only web links and site paths open from a notification (no javascript:, no //host). */
export const safeLink = (link) => typeof link === 'string' && /^(https?:\/\/|\/(?!\/))/.test(link);
