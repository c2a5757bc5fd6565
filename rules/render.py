"""Renders the content of the fired rules into the answer.

Only winners are rendered: a template costs microseconds, a condition
nanoseconds, so content waits until arbitration has chosen.
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
    out = Rendered()
    scope = RenderScope(variables, locale, timezone)

    def text(template: Template | None) -> Any:
        if template is None:
            return None
        return template.compiled.render_in(scope)

    for fired in selection.fired:
        rule_id = fired.plan.id
        for placement in fired.placements:
            action, channel = placement.action, placement.channel
            if isinstance(action, SlotAction):
                if action.html is not None:
                    out.slots[action.slot] = {"rule": rule_id, "html": text(action.html)}
                else:
                    out.slots[action.slot] = {"rule": rule_id, "json": _json(action.json, text)}
            elif isinstance(action, MessageAction):
                out.messages.append(_message(rule_id, action.type, action.fields, action.cta, text))
            elif isinstance(action, PushAction):
                out.push.append({"rule": rule_id, "title": text(action.title),
                                 "body": text(action.body) or "", "link": text(action.link)})
            elif isinstance(action, NotifyAction):
                if channel == "in_app":
                    out.messages.append(
                        _message(rule_id, action.type, action.fields, action.cta, text))
                elif channel == "push":
                    out.push.append({"rule": rule_id, "title": text(action.fields.get("title")),
                                     "body": text(action.fields.get("body")) or "",
                                     "link": text(action.link)})
                elif channel is not None:
                    out.outbound.append({"rule": rule_id, "channel": channel,
                                         "title": text(action.fields.get("title")),
                                         "body": text(action.fields.get("body")) or "",
                                         "link": text(action.link)})
    return out


def _message(rule_id: str, kind: str, fields: dict[str, Template],
             cta: dict[str, Template] | None, text: Any) -> dict:
    message: dict[str, Any] = {"rule": rule_id, "type": kind}
    for key, template in fields.items():
        message[key] = text(template)
    if cta is not None:
        message["cta"] = {key: text(template) for key, template in cta.items()}
    return message


def _json(content: JsonTemplate, text: Any) -> Any:
    if isinstance(content, Template):
        return text(content)
    if isinstance(content, dict):
        return {key: _json(value, text) for key, value in content.items()}
    if isinstance(content, list):
        return [_json(item, text) for item in content]
    return content
