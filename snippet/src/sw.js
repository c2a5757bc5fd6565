// The Kairos service worker: Web Push for a site that enables it.
// Registered by kairos('push') as <site>/kairos-sw.js?u=<edge>&k=<write key>&a=<anonymous id>
// (the site serves the edge's /kairos-sw.js from its own origin, or the edge
// runs on it). On activation it subscribes with the site's VAPID public key and
// sends the subscription to the edge, which keeps it as the person's push
// address; then it shows the notifications the edge pushes.
import { keyBytes, safeLink } from './push.js';

const params = new URL(self.location.href).searchParams;
const edge = params.get('u');
const key = params.get('k');
const anonymousId = params.get('a');

async function subscribe() {
  const answer = await fetch(`${edge}/v1/push-key?writeKey=${encodeURIComponent(key)}`);
  if (!answer.ok) return;
  const { vapidPublicKey } = await answer.json();
  const subscription = await self.registration.pushManager.subscribe({
    userVisibleOnly: true,
    applicationServerKey: keyBytes(vapidPublicKey),
  });
  await fetch(`${edge}/v1/e`, {
    method: 'POST',
    body: JSON.stringify({
      type: 'track', event: 'Push Subscribed', writeKey: key, anonymousId,
      messageId: self.crypto.randomUUID(), properties: { subscription: subscription.toJSON() },
    }),
  });
}

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => {
  // A failed subscription (no push service, permission withdrawn) leaves the site as it was.
  event.waitUntil(self.clients.claim().then(subscribe).catch(() => {}));
});
self.addEventListener('push', (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (e) {
    data = { title: event.data.text() };
  }
  // The message id as the tag: a push delivered twice replaces its notification.
  const options = { body: String(data.body || ''), data: { link: safeLink(data.link) ? data.link : null } };
  if (data.tag) options.tag = String(data.tag);
  event.waitUntil(self.registration.showNotification(String(data.title || ''), options));
});
self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const link = event.notification.data && event.notification.data.link;
  if (link) event.waitUntil(self.clients.openWindow(link));
});
