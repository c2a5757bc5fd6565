// A cheap bot check: automation (navigator.webdriver) or a crawler's User-Agent.
// "bot" must be followed by / - or ; so phone brands such as "CUBOT" pass;
// most crawlers also give a contact URL ("+http://...").

export const BOT_UA = /bot[/;-]|crawl|spider|headless|lighthouse|\+https?:/i;

export const isBot = (nav) => nav.webdriver === true || BOT_UA.test(nav.userAgent);
