"""Which definitions an event can trigger, by event type and track name.

decide() looks up one generated function per event; that function holds only
the rules the event can trigger, so the rest cost nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from .definitions import EVENT_TYPES, Trigger

T = TypeVar("T")

NON_TRACK_TYPES = tuple(kind for kind in EVENT_TYPES if kind != "track")


def triggered_by(trigger: Trigger, kind: str | None, track_name: str | None) -> bool:
    """Does an event of type `kind` (and, for track, named `track_name`) match `trigger`?"""
    if trigger.kind == "any":
        return True
    if trigger.kind != kind:
        return False
    return kind != "track" or trigger.track_name is None or trigger.track_name == track_name


class DispatchTable:
    """Maps an event to the function built for the definitions it triggers.

    Events with the same set of triggered definitions share one function.
    """

    def __init__(
        self,
        items: list[T],
        triggers_of: Callable[[T], Iterable[Trigger]],
        build: Callable[[list[T]], Callable],
    ) -> None:
        built: dict[tuple[int, ...], Callable] = {}

        def function_for(kind: str | None, track_name: str | None) -> Callable:
            chosen = [
                i
                for i, item in enumerate(items)
                if any(triggered_by(t, kind, track_name) for t in triggers_of(item))
            ]
            key = tuple(chosen)
            if key not in built:
                built[key] = build([items[i] for i in chosen])
            return built[key]

        track_names = sorted(
            {
                t.track_name
                for item in items
                for t in triggers_of(item)
                if t.kind == "track" and t.track_name is not None
            }
        )
        self.by_type: dict[str, Callable] = {
            kind: function_for(kind, None) for kind in NON_TRACK_TYPES
        }
        self.by_track_name: dict[str, Callable] = {
            name: function_for("track", name) for name in track_names
        }
        self.any_track: Callable = function_for("track", None)
        self.other: Callable = function_for(None, None)

    def replace_functions(self, replacement: Callable[[Callable], Callable]) -> None:
        """Swap every function for replacement(function), e.g. a name for the compiled function."""
        self.by_type = {kind: replacement(fn) for kind, fn in self.by_type.items()}
        self.by_track_name = {name: replacement(fn) for name, fn in self.by_track_name.items()}
        self.any_track = replacement(self.any_track)
        self.other = replacement(self.other)

    def lookup(self, event: dict) -> Callable:
        kind = event.get("type")
        if kind == "track":
            name = event.get("event")
            if name.__class__ is str:
                return self.by_track_name.get(name, self.any_track)  # type: ignore[arg-type]
            return self.any_track
        if kind.__class__ is str:
            return self.by_type.get(kind, self.other)  # type: ignore[arg-type]
        return self.other
