"""The answer of decide(): what to show this person now."""

from __future__ import annotations

import msgspec


class Decision(msgspec.Struct):
    # slot name -> {"rule": id, "html": str} or {"rule": id, "json": value}
    slots: dict[str, dict]
    # {"rule": id, "type": "banner"|"modal"|"toast", "title"?, "body"?, "cta"?: {"label", "url"}}
    messages: list[dict]
    # {"rule": id, "title": str, "body": str, "link": str | None}
    push: list[dict]
    # ids of the segments the person is in after this event, sorted
    segments: list[str]
    # traits that rules set; the first rule (by priority) to set a trait wins
    set_traits: dict[str, object]
    # tags that rules add, without repeats, in rule order
    add_tags: list[str]

    def to_answer(self) -> dict:
        """The part of a decision that is sent back to the browser or app."""
        return {
            "slots": self.slots,
            "messages": self.messages,
            "push": self.push,
            "segments": self.segments,
        }
