"""The floor servers the edge is measured against, in the same run.

- `bare`: Starlette parses the JSON body and answers JSON, nothing else.
- `evalsha`: the same plus one EVALSHA per request through redis.asyncio — the
  least any Redis-backed edge must do. Its script touches a per-person hash and
  returns it, like a minimal profile update.
- `pipelined`: the same EVALSHA through the edge's own hot-path Redis layer
  (edge.store.batcher: RESP packed by hand, the calls of one loop tick in one
  write, replies parsed by hiredis) — the floor for an edge that uses it.

Run: python -m bench.floor {bare|evalsha|pipelined} PORT WORKERS REDIS_URL
"""

from __future__ import annotations

import hashlib
import os
import sys

import orjson
import redis.asyncio as aioredis
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from edge.store.batcher import ScriptBatcher

FLOOR_SCRIPT = """
redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('HSET', KEYS[1], 'ls', ARGV[1])
return redis.call('HGETALL', KEYS[1])
"""


def bare_app() -> Starlette:
    async def endpoint(request: Request) -> Response:
        body = orjson.loads(await request.body())
        return Response(orjson.dumps({"success": True, "id": body.get("anonymousId")}),
                        media_type="application/json")

    return Starlette(routes=[Route("/v1/{kind}", endpoint, methods=["POST"])])


def evalsha_app() -> Starlette:
    client = aioredis.from_url(os.environ["FLOOR_REDIS_URL"])
    state: dict[str, str] = {}

    async def endpoint(request: Request) -> Response:
        body = orjson.loads(await request.body())
        if "sha" not in state:
            state["sha"] = await client.script_load(FLOOR_SCRIPT)
        person = body.get("userId") or body.get("anonymousId")
        reply = await client.evalsha(state["sha"], 1, "{f:" + str(person) + "}", body.get("messageId", ""))
        return Response(orjson.dumps({"success": True, "fields": len(reply)}),
                        media_type="application/json")

    return Starlette(routes=[Route("/v1/{kind}", endpoint, methods=["POST"])])


class _FloorScript:
    """FLOOR_SCRIPT in the shape edge.store.batcher calls (its SHA and source)."""

    source = FLOOR_SCRIPT
    sha = hashlib.sha1(FLOOR_SCRIPT.encode()).hexdigest()


def pipelined_app() -> Starlette:
    batcher = ScriptBatcher(os.environ["FLOOR_REDIS_URL"])
    loaded: list[bool] = []

    async def endpoint(request: Request) -> Response:
        body = orjson.loads(await request.body())
        if not loaded:
            await batcher.command("SCRIPT", "LOAD", FLOOR_SCRIPT)
            loaded.append(True)
        person = body.get("userId") or body.get("anonymousId")
        reply = await batcher.call(_FloorScript, ["{f:" + str(person) + "}"],  # type: ignore[arg-type]
                                   [body.get("messageId", "")])
        return Response(orjson.dumps({"success": True, "fields": len(reply)}),
                        media_type="application/json")

    return Starlette(routes=[Route("/v1/{kind}", endpoint, methods=["POST"])])


APPS = {"bare": "bench.floor:bare_app", "evalsha": "bench.floor:evalsha_app",
        "pipelined": "bench.floor:pipelined_app"}


def main() -> None:
    kind, port, workers, redis_url = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    os.environ["FLOOR_REDIS_URL"] = redis_url
    uvicorn.run(APPS[kind], factory=True, host="127.0.0.1", port=port, workers=workers,
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
