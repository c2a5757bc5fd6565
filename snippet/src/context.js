// What every event says about where it happened (Segment's context fields).

import { VERSION } from './version.js';
import { safe } from './util.js';

const PARAM = /^(?:utm_(source|medium|campaign|term|content)|(gclid|fbclid|msclkid))$/;

/** UTM parameters (with Segment's names: source, medium, name, term, content) and ad click ids from a query string. */
export function campaign(search) {
  const out = {};
  safe(() => new URLSearchParams(search).forEach((value, name) => {
    const m = PARAM.exec(name.toLowerCase());
    if (m) out[m[1] === 'campaign' ? 'name' : m[1] || m[2]] = value;
  }));
  return out;
}

/** The page's URL without its fragment. */
export const pageUrl = (loc) => loc.href.split('#')[0];

/** {url, path, referrer, title, search}; referrer null means document.referrer. */
export function page(win, referrer) {
  const loc = win.location;
  return {
    url: pageUrl(loc),
    path: loc.pathname,
    referrer: referrer == null ? win.document.referrer : referrer,
    title: win.document.title,
    search: loc.search,
  };
}

export function context(win, referrer) {
  const scr = win.screen || {};
  return {
    page: page(win, referrer),
    campaign: campaign(win.location.search),
    library: { name: 'kairos-snippet', version: VERSION },
    locale: win.navigator.language,
    screen: { width: scr.width, height: scr.height },
    timezone: safe(() => Intl.DateTimeFormat().resolvedOptions().timeZone),
  };
}
