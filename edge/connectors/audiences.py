"""Ad audiences: people as the ad platforms match them, hashed, in each platform's format.

A platform never receives an address, only the SHA-256 (hex) of it written the way
the platform writes it before hashing, or nothing would match:

| | Google (Customer Match, Data Manager API) | Meta (Custom Audiences) |
|---|---|---|
| email | trimmed, lowercase; dots before the @ removed for gmail.com and googlemail.com | trimmed, lowercase |
| phone | E.164 with its `+` (`+420603123456`) | E.164's digits, no `+` (`420603123456`) |

A member is a person with at least one identifier; the identifiers travel together
(one audience member of Google's, one row of Meta's schema), so the platform joins
them to one account. Requests hold at most `MAX_MEMBERS` members (both platforms
refuse more in one call).

Google: `POST /v1/audienceMembers:ingest` and `:remove` of the Data Manager API, a
Destination naming the account and the audience, hex encoding, and the consent the
person gave for ad data and ad personalization (only consented people are exported).
Meta: `POST` (add) and `DELETE` (remove) of `/<version>/<audience id>/users` with
`{"payload": {"schema": [...], "data": [[...], ...]}}`. Both take an OAuth bearer
token, read from the environment.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edge.connectors.phones import e164

FORMATS = ("google", "meta")
MAX_MEMBERS = 10_000
GMAIL_DOMAINS = ("gmail.com", "googlemail.com")
# Identifier kinds, in the order a member lists them; Meta's schema names them so.
META_SCHEMA = {"email": "EMAIL", "phone": "PHONE"}
GOOGLE_FIELDS = {"email": "emailAddress", "phone": "phoneNumber"}


@dataclass(frozen=True, slots=True)
class Member:
    """One person as a platform receives them: (kind, SHA-256 hex) per identifier."""

    profile_id: str
    hashes: tuple[tuple[str, str], ...]

    def stored(self) -> str:
        """The hashes as the export's state keeps them, to remove them later."""
        return ",".join(f"{kind}:{digest}" for kind, digest in self.hashes)

    @classmethod
    def from_stored(cls, profile_id: str, text: str) -> "Member":
        pairs = (part.split(":", 1) for part in text.split(",") if ":" in part)
        return cls(profile_id, tuple((kind, digest) for kind, digest in pairs))


def normalize_email(raw: str, platform: str) -> str | None:
    email = "".join(raw.split()).lower()
    local, at, domain = email.rpartition("@")
    if not at or not local or "." not in domain:
        return None
    if platform == "google" and domain in GMAIL_DOMAINS:
        local = local.replace(".", "")
    return f"{local}@{domain}"


def normalize_phone(raw: str, platform: str, default_region: str) -> str | None:
    number = e164(raw, default_region)
    if number is None:
        return None
    return number if platform == "google" else number[1:]


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def member_of(profile_id: str, traits: Mapping[str, Any], platform: str,
              default_region: str) -> Member | None:
    """The person's hashed identifiers for `platform`; None when they have none usable."""
    hashes = []
    email = traits.get("email")
    if isinstance(email, str) and (normalized := normalize_email(email, platform)):
        hashes.append(("email", sha256_hex(normalized)))
    phone = traits.get("phone")
    if isinstance(phone, str) and (normalized := normalize_phone(phone, platform,
                                                                 default_region)):
        hashes.append(("phone", sha256_hex(normalized)))
    return Member(profile_id, tuple(hashes)) if hashes else None


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a platform's requests go: Google's account and audience ids, Meta's audience."""

    audience_id: str
    account_type: str = "GOOGLE_ADS"  # Google only
    account_id: str = ""  # Google only


@dataclass(frozen=True, slots=True)
class Request:
    """One platform call: its method, its path under the platform's base URL, its body."""

    operation: str  # add | remove
    method: str
    path: str
    body: dict[str, Any]
    profile_ids: tuple[str, ...]  # whose identifiers it carries, in order


def requests_for(platform: str, operation: str, members: Sequence[Member],
                 destination: Destination, api_version: str = "v21.0",
                 batch: int = MAX_MEMBERS) -> Iterable[Request]:
    """The calls that add or remove `members`, at most `batch` members each."""
    for start in range(0, len(members), batch):
        chunk = members[start:start + batch]
        if platform == "google":
            yield _google(operation, chunk, destination)
        elif platform == "meta":
            yield _meta(operation, chunk, destination, api_version)
        else:
            raise ValueError(f"unknown audience format {platform!r}")


def _google(operation: str, members: Sequence[Member], destination: Destination) -> Request:
    body: dict[str, Any] = {
        "destinations": [{
            "operatingAccount": {"accountType": destination.account_type,
                                 "accountId": destination.account_id},
            "productDestinationId": destination.audience_id,
        }],
        "audienceMembers": [
            {"userData": {"userIdentifiers": [{GOOGLE_FIELDS[kind]: digest}
                                              for kind, digest in member.hashes]}}
            for member in members],
        "encoding": "HEX",
    }
    if operation == "add":
        # only people who gave their consent are exported: both answers are theirs
        body["consent"] = {"adUserData": "CONSENT_GRANTED",
                           "adPersonalization": "CONSENT_GRANTED"}
    verb = "ingest" if operation == "add" else "remove"
    return Request(operation, "POST", f"/v1/audienceMembers:{verb}", body,
                   tuple(member.profile_id for member in members))


def _meta(operation: str, members: Sequence[Member], destination: Destination,
          api_version: str) -> Request:
    kinds = [kind for kind in META_SCHEMA if any(k == kind for m in members for k, _ in m.hashes)]
    rows = []
    for member in members:
        found = dict(member.hashes)
        rows.append([found.get(kind, "") for kind in kinds])
    body = {"payload": {"schema": [META_SCHEMA[kind] for kind in kinds], "data": rows}}
    return Request(operation, "POST" if operation == "add" else "DELETE",
                   f"/{api_version}/{destination.audience_id}/users", body,
                   tuple(member.profile_id for member in members))
