"""Script calls for the hot path: EVALSHA through the pipelining connection.

All calls made within one event-loop tick leave as one write (see
`pipelined.py`), so concurrent requests share the client's cost and each event
still makes exactly one script call. On NOSCRIPT (a restarted or flushed
Redis) the scripts are loaded and the call repeated.
"""

from __future__ import annotations

from typing import Any, Awaitable, Sequence

from redis.exceptions import NoScriptError

from edge.store.pipelined import PipelinedConnection, pack_arguments
from edge.store.scripts import ALL, Script


class ScriptBatcher:
    def __init__(self, url: str) -> None:
        self.connection = PipelinedConnection(url)
        # (script sha, key count) -> "EVALSHA sha count" as RESP: the same few per script
        self._heads: dict[tuple[str, int], bytes] = {}

    async def load_scripts(self) -> None:
        for script in ALL:
            await self.connection.execute("SCRIPT", "LOAD", script.source)

    def call(self, script: Script, keys: Sequence[str | bytes], args: Sequence[Any]) -> Awaitable[Any]:
        """EVALSHA of a script with these keys and arguments: await it for the reply."""
        return self.call_packed(script, pack_arguments(keys), len(keys),
                                pack_arguments(args), len(args))

    async def command(self, *args: Any) -> Any:
        """Any other command on the hot path, pipelined the same way."""
        return await self.connection.execute(*args)

    async def call_packed(self, script: Script, packed_keys: bytes, key_count: int,
                          packed_args: bytes, arg_count: int) -> Any:
        """EVALSHA with its keys and arguments already packed as RESP (pack_arguments):
        the hot path packs what does not change per event once (see keys.EventKeys)."""
        head = self._heads.get((script.sha, key_count))
        if head is None:
            head = self._heads[script.sha, key_count] = pack_arguments(
                ("EVALSHA", script.sha, key_count))
        packed = (b"*%d\r\n" % (3 + key_count + arg_count)) + head + packed_keys + packed_args
        try:
            return await self.connection.send(packed)
        except NoScriptError:
            await self.load_scripts()
            return await self.connection.send(packed)

    def close(self) -> None:
        self.connection.close()
