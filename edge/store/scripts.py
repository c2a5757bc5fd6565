"""Lua scripts, loaded from the files beside this module and called by SHA.

EVALSHA first; on NOSCRIPT (a restarted or flushed Redis) the script is loaded
and the call repeated, so callers never see the difference.
"""

from __future__ import annotations

import hashlib
from importlib import resources


class Script:
    def __init__(self, name: str) -> None:
        self.name = name
        self.source = resources.files("edge.store").joinpath(f"{name}.lua").read_text()
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()


EVENT = Script("event")
LINK = Script("link")
MERGE = Script("merge")
DROP_POINTER = Script("drop_pointer")
EFFECTS = Script("effects")
ALL = (EVENT, LINK, MERGE, DROP_POINTER, EFFECTS)
