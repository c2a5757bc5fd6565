"""Real HTTP servers in the ad platforms' audience formats, for the export tests: Google's
Data Manager API (`/v1/audienceMembers:ingest` and `:remove`) and Meta's Custom Audiences
(`POST` and `DELETE /<version>/<audience>/users`). Each checks the bearer token and the
request's shape as the platform documents it (hex SHA-256 identifiers, the destination,
the consent of an ingest, a schema its rows match), keeps the audience's members as the
platform would, and can be told to answer as a busy or refusing platform does."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.provider_servers import _json, _Server

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class Call:
    method: str
    path: str
    body: Any
    status: int = 200


@dataclass
class _Platform:
    token: str
    calls: list[Call] = field(default_factory=list)
    members: set[frozenset[tuple[str, str]]] = field(default_factory=set)
    # how to answer the next requests, in order (a status, or None: accept), then accept
    failures: list[int | None] = field(default_factory=list)

    def identifiers(self) -> set[tuple[str, str]]:
        return {pair for member in self.members for pair in member}

    def _refusal(self, request: Request, problem: str | None, call: Call) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            call.status = 401
            return _json({"error": {"code": 401, "message": "bad token"}}, 401)
        if problem:
            call.status = 400
            return _json({"error": {"code": 400, "message": problem}}, 400)
        if self.failures and (status := self.failures.pop(0)) is not None:
            call.status = status
            headers = {"Retry-After": "1"} if call.status == 429 else {}
            return Response(orjson.dumps({"error": {"code": call.status}}), call.status,
                            headers=headers, media_type="application/json")
        return None


class GoogleAudiences(_Server):
    KINDS = {"emailAddress": "email", "phoneNumber": "phone"}

    def __init__(self, token: str, account_id: str, audience_id: str) -> None:
        self.platform = _Platform(token)
        self.account_id, self.audience_id = account_id, audience_id
        super().__init__([Route("/v1/audienceMembers:{verb}", self._call, methods=["POST"])])

    async def _call(self, request: Request) -> Response:
        verb = request.path_params["verb"]
        body = orjson.loads(await request.body())
        call = Call("POST", request.url.path, body)
        self.platform.calls.append(call)
        members = self._members(body, verb)
        refused = self.platform._refusal(request, members if isinstance(members, str) else
                                         None, call)
        if refused is not None:
            return refused
        for member in members:
            if verb == "ingest":
                self.platform.members.add(member)
            else:  # a removal names identifiers: every member holding one goes
                self.platform.members = {m for m in self.platform.members if not m & member}
        return _json({"requestId": f"req-{len(self.platform.calls)}"}, 200)

    def _members(self, body: Any, verb: str) -> list[frozenset[tuple[str, str]]] | str:
        if verb not in ("ingest", "remove"):
            return f"unknown method {verb}"
        if body.get("encoding") != "HEX":
            return "encoding must be HEX"
        destinations = body.get("destinations") or []
        if destinations != [{"operatingAccount": {"accountType": "GOOGLE_ADS",
                                                  "accountId": self.account_id},
                             "productDestinationId": self.audience_id}]:
            return f"unexpected destinations {destinations}"
        if verb == "ingest" and body.get("consent") != {"adUserData": "CONSENT_GRANTED",
                                                        "adPersonalization": "CONSENT_GRANTED"}:
            return "ingest without granted consent"
        listed = body.get("audienceMembers") or []
        if not 0 < len(listed) <= 10_000:
            return "between 1 and 10000 audience members"
        members = []
        for member in listed:
            identifiers = member.get("userData", {}).get("userIdentifiers") or []
            pairs = set()
            for identifier in identifiers:
                [(name, value)] = identifier.items()
                if name not in self.KINDS or not SHA256_HEX.match(value):
                    return f"bad identifier {identifier}"
                pairs.add((self.KINDS[name], value))
            if not pairs:
                return "a member without identifiers"
            members.append(frozenset(pairs))
        return members


class MetaAudiences(_Server):
    KINDS = {"EMAIL": "email", "PHONE": "phone"}

    def __init__(self, token: str, audience_id: str, version: str = "v21.0") -> None:
        self.platform = _Platform(token)
        super().__init__([Route(f"/{version}/{audience_id}/users", self._call,
                                methods=["POST", "DELETE"])])

    async def _call(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        call = Call(request.method, request.url.path, body)
        self.platform.calls.append(call)
        members = self._members(body)
        refused = self.platform._refusal(request, members if isinstance(members, str) else
                                         None, call)
        if refused is not None:
            return refused
        for member in members:
            if request.method == "POST":
                self.platform.members.add(member)
            else:
                self.platform.members = {m for m in self.platform.members if not m & member}
        return _json({"audience_id": "x", "num_received": len(members),
                      "num_invalid_entries": 0}, 200)

    def _members(self, body: Any) -> list[frozenset[tuple[str, str]]] | str:
        payload = body.get("payload") or {}
        schema, rows = payload.get("schema"), payload.get("data")
        if not isinstance(schema, list) or not schema or any(s not in self.KINDS for s in schema):
            return f"bad schema {schema}"
        if not isinstance(rows, list) or not 0 < len(rows) <= 10_000:
            return "between 1 and 10000 rows"
        members = []
        for row in rows:
            if len(row) != len(schema):
                return "a row that does not match the schema"
            pairs = {(self.KINDS[kind], value) for kind, value in zip(schema, row) if value}
            if not pairs or any(not SHA256_HEX.match(value) for _, value in pairs):
                return f"bad row {row}"
            members.append(frozenset(pairs))
        return members
