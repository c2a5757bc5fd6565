"""Operator routes: reload the rules (scope admin)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from edge.http.common import json_response, require_scope
from edge.http.state import EdgeState

RELOAD_CHANNEL = "kairos:reload"


async def reload_rules(request: Request) -> Response:
    """Reload the rule files now, in this worker and (through Redis) in every other one."""
    state: EdgeState = request.app.state.edge
    caller = state.keyring.authenticate(request.headers.get("authorization"))
    require_scope(caller, "admin")
    problems = state.rulebook.reload()
    if problems:
        reason = f"{len(problems)} problem(s) in the rule files; the running rules stay"
        return json_response({"success": False, "error": "invalid_rules", "code": "invalid_rules",
                              "message": reason, "reason": reason,
                              "problems": [str(p) for p in problems]}, 422)
    await state.redis.publish(RELOAD_CHANNEL, state.rulebook.active.ruleset.version)
    ruleset = state.rulebook.active.ruleset
    return json_response({"success": True, "version": ruleset.version,
                          "rules": ruleset.rule_count, "segments": ruleset.segment_count,
                          "aggregates": [a.id for a in ruleset.aggregates]})
