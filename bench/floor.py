"""The floor servers the edge is measured against, in the same run.

- `bare`: Starlette parses the JSON body and answers JSON, nothing else.
- `evalsha`: the same plus one EVALSHA per request through redis.asyncio — the
  least any Redis-backed edge must do. Its script touches a per-person hash and
  returns it, like a minimal profile update.

Run: python -m bench.floor {bare|evalsha} PORT WORKERS REDIS_URL
"""

from __future__ import annotations

import os
import sys

import orjson
import redis.asyncio as aioredis
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

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


def main() -> None:
    kind, port, workers, redis_url = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    os.environ["FLOOR_REDIS_URL"] = redis_url
    factory = "bench.floor:bare_app" if kind == "bare" else "bench.floor:evalsha_app"
    uvicorn.run(factory, factory=True, host="127.0.0.1", port=port, workers=workers,
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
