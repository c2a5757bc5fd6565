"""Opens and clicks made by machines, not people: privacy proxies that fetch every
image when mail arrives (Apple Mail Privacy Protection), prefetchers, and the link
scanners of mail filters that follow every link before the reader sees it
(Microsoft Safe Links, Proofpoint, Mimecast, Barracuda, ...). They are recorded
under their own event names, so they count neither as engagement (best send hour,
last engaged channel) nor for inactivity or a journey's goal."""

from __future__ import annotations

import re

# What such fetchers say they are. Gmail's image proxy fetches when the reader opens
# the mail, so it is an open (without the reader's address), not a machine.
SCANNER_AGENTS = re.compile(
    r"safelinks|proofpoint|mimecast|barracuda|forcepoint|symantec|messagelabs|trendmicro"
    r"|sophos|cisco|ironport|fortiguard|bitdefender|zscaler|python-requests|curl/|wget/"
    r"|go-http-client|java/|okhttp|headlesschrome|phantomjs|bot\b|crawler|spider|preview",
    re.IGNORECASE)
# Apple's proxy announces itself as a bare "Mozilla/5.0" with nothing after it.
BARE_MOZILLA = re.compile(r"^Mozilla/5\.0$")
SCANNER_WINDOW_MS = 10_000  # a click this soon after sending is a scanner's


def open_by_machine(user_agent: str | None, purpose_header: str | None = None) -> bool:
    agent = (user_agent or "").strip()
    if not agent or BARE_MOZILLA.match(agent) or SCANNER_AGENTS.search(agent):
        return True
    return (purpose_header or "").lower() in ("prefetch", "preview")


def click_by_machine(user_agent: str | None, method: str, sent_ms: int, now_ms: int,
                     purpose_header: str | None = None) -> bool:
    if method.upper() == "HEAD":
        return True
    agent = (user_agent or "").strip()
    if not agent or SCANNER_AGENTS.search(agent):
        return True
    if (purpose_header or "").lower() in ("prefetch", "preview"):
        return True
    return bool(sent_ms) and 0 <= now_ms - sent_ms < SCANNER_WINDOW_MS
