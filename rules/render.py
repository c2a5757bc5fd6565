"""Renders the content of the fired rules into the answer.

Only winners are rendered: a template costs microseconds, a condition
nanoseconds, so content waits until arbitration has chosen.  The templates
of one answer share one `RenderScope`; an answer is built fresh each time
(nothing mutable is shared between answers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .arbitration import Placement, Selection
from .content import RenderScope
from .definitions import (
    JsonTemplate,
    MessageAction,
    NotifyAction,
    PushAction,
    SetTraitAction,
    SlotAction,
    TagAction,
    Template,
    action_templates,
)


@dataclass(slots=True)
class Rendered:
    slots: dict[str, dict] = field(default_factory=dict)
    messages: list[dict] = field(default_factory=list)
    push: list[dict] = field(default_factory=list)
    # email, sms and whatsapp: delivered later through the channels, never sent to a browser
    outbound: list[dict] = field(default_factory=list)

    def answer(self, segments: list[str]) -> dict[str, Any]:
        return {"slots": self.slots, "messages": self.messages, "push": self.push,
                "segments": segments}


def needed_names(selection: Selection) -> set[str]:
    """Top-level variables the winners' templates read (to fetch catalog data only if used)."""
    names: set[str] = set()
    for fired in selection.fired:
        for placement in fired.placements:
            for template in action_templates(placement.action):
                names |= template.names
    return names


def render(selection: Selection, variables: dict[str, Any], locale: str | None,
           timezone: str | None) -> Rendered:
    out = Rendered({}, [], [], [])
    scope = RenderScope(variables, locale, timezone)
    for fired in selection.fired:
        write = fired.write
        if write is not None:  # most winners: their content written out at load
            write(out, scope)
            continue
        rule_id = fired.plan.id
        for placement in fired.placements:
            action, channel = placement.action, placement.channel
            if isinstance(action, SlotAction):  # the most common action by far
                if action.html is not None:
                    content = {"rule": rule_id, "html": action.html.compiled.render_in(scope)}
                else:
                    content = {"rule": rule_id, "json": _json(action.json, scope)}
                out.slots[action.slot] = content
            elif isinstance(action, MessageAction):
                out.messages.append(_message(rule_id, action.type, action.fields, action.cta,
                                             scope))
            elif isinstance(action, PushAction):
                out.push.append({"rule": rule_id, "title": _text(action.title, scope),
                                 "body": _text(action.body, scope) or "",
                                 "link": _text(action.link, scope)})
            elif isinstance(action, NotifyAction):
                _notify(out, rule_id, action, channel, scope)
            # tags and traits have no content
    return out


def _notify(out: Rendered, rule_id: str, action: NotifyAction, channel: str | None,
            scope: RenderScope) -> None:
    if channel == "in_app":
        out.messages.append(_message(rule_id, action.type, action.fields, action.cta, scope))
    elif channel == "push":
        out.push.append({"rule": rule_id, "title": _text(action.fields.get("title"), scope),
                         "body": _text(action.fields.get("body"), scope) or "",
                         "link": _text(action.link, scope)})
    elif channel is not None:
        out.outbound.append({"rule": rule_id, "channel": channel,
                             "title": _text(action.fields.get("title"), scope),
                             "body": _text(action.fields.get("body"), scope) or "",
                             "link": _text(action.link, scope)})


def _text(template: Template | None, scope: RenderScope) -> Any:
    return None if template is None else template.compiled.render_in(scope)


def _message(rule_id: str, kind: str, fields: dict[str, Template],
             cta: dict[str, Template] | None, scope: RenderScope) -> dict:
    message: dict[str, Any] = {"rule": rule_id, "type": kind}
    for key, template in fields.items():
        message[key] = _text(template, scope)
    if cta is not None:
        message["cta"] = {key: _text(template, scope) for key, template in cta.items()}
    return message


# JSON leaves that are kept as they are: immutable, so every answer may hold the same one.
_LITERALS = frozenset({str, int, float, bool, type(None)})


def _json(content: JsonTemplate, scope: RenderScope) -> Any:
    """A fresh copy of json slot content with its templates rendered."""
    if isinstance(content, Template):
        return content.compiled.render_in(scope)
    if isinstance(content, dict):
        return {key: value if value.__class__ in _LITERALS else _json(value, scope)
                for key, value in content.items()}
    if isinstance(content, list):
        return [item if item.__class__ in _LITERALS else _json(item, scope)
                for item in content]
    return content


# -- content writers ------------------------------------------------------------
# A winner made at load (rules.arbitration builds the common ones once) always places
# the same actions, so its content is written out as one Python function, compiled
# when the rules load: the dicts the answer holds, with the rule id, slot names and
# fixed copy as constants and each other template's render called directly. It does
# what the loop in render() does for those placements; tests/test_content_writers.py
# holds the two to the same answers.
Write = Callable[[Rendered, RenderScope], None]

# Actions a writer can place; notify chooses its channel per person, so it has none.
_WRITABLE = (SlotAction, MessageAction, PushAction, SetTraitAction, TagAction)


def content_writer(rule_id: str, placements: Sequence[Placement]) -> Write | None:
    """The function writing these placements' content, or None when render() must."""
    if not all(placement.action.__class__ in _WRITABLE for placement in placements):
        return None
    writer = _WriterSource()
    rule = writer.constant(rule_id)
    for placement in placements:
        action = placement.action
        if isinstance(action, SlotAction):
            if action.html is not None:
                content = f"{{'rule': {rule}, 'html': {writer.text(action.html)}}}"
            else:
                content = (f"{{'rule': {rule}, 'json': "
                           f"_json({writer.constant(action.json)}, scope)}}")
            writer.line(f"out.slots[{writer.constant(action.slot)}] = {content}")
        elif isinstance(action, MessageAction):
            entries = [f"'rule': {rule}", f"'type': {writer.constant(action.type)}"]
            entries += [f"{writer.constant(key)}: {writer.text(template)}"
                        for key, template in action.fields.items()]
            if action.cta is not None:
                cta = ", ".join(f"{writer.constant(key)}: {writer.text(template)}"
                                for key, template in action.cta.items())
                entries.append(f"'cta': {{{cta}}}")
            writer.line(f"out.messages.append({{{', '.join(entries)}}})")
        elif isinstance(action, PushAction):
            writer.line(f"out.push.append({{'rule': {rule}, 'title': {writer.text(action.title)}, "
                        f"'body': {writer.text(action.body, or_empty=True)}, "
                        f"'link': {writer.text(action.link)}}})")
        # tags and traits have no content
    return writer.function()


class _WriterSource:
    """The source of one content writer. Names only reach the source: everything the
    rule author wrote (ids, slots, keys, text) is a constant in the namespace."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.namespace: dict[str, Any] = {"_json": _json}

    def constant(self, value: Any) -> str:
        name = f"c{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def text(self, template: Template | None, or_empty: bool = False) -> str:
        """An expression for the template's output, as _text() gives it."""
        if template is None:
            return "''" if or_empty else "None"
        static = template.compiled.static
        if static is not None:
            return self.constant(static)  # a str already: `or ''` would change nothing
        call = f"{self.constant(template.compiled.render_in)}(scope)"
        return f"({call} or '')" if or_empty else call

    def line(self, text: str) -> None:
        self.lines.append(text)

    def function(self) -> Write:
        body = self.lines or ["pass"]
        source = "def write(out, scope):\n" + "".join(f"    {line}\n" for line in body)
        exec(_compiled_writer(source), self.namespace)  # noqa: S102 - generated, see above
        return self.namespace["write"]


@lru_cache(maxsize=512)
def _compiled_writer(source: str) -> Any:
    # Rules of the same shape have the same source (what differs is in the constants).
    return compile(source, "<content writer>", "exec")
