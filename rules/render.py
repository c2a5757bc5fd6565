"""Renders the content of the fired rules into the answer.

Only winners are rendered: a template costs microseconds, a condition
nanoseconds, so content waits until arbitration has chosen.  The templates
of one answer share one `RenderScope`; an answer is built fresh each time
(nothing mutable is shared between answers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .arbitration import Selection
from .content import RenderScope
from .definitions import (
    JsonTemplate,
    MessageAction,
    NotifyAction,
    PushAction,
    SlotAction,
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
