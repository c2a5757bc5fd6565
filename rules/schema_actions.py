"""Reads the actions of a rule: slot content, messages, pushes, notifications, traits and tags.

Actions are the widest part of a rule document (six kinds, each with its own
keys) and the only part that holds JSON content, with its bounds per document,
so they are read apart from the document's sections. `ActionReader` works on
the generic node readers of rules.schema's document reader, which it is given
rather than imports: rules.schema imports this module, not the other way round.
"""

from __future__ import annotations

import math
from typing import Protocol

import yaml

from .definitions import (
    NOTIFY_CHANNELS,
    Action,
    JsonTemplate,
    MessageAction,
    NotifyAction,
    PushAction,
    SetTraitAction,
    SlotAction,
    TagAction,
    Template,
)
from .problems import Problem
from .suggest import did_you_mean
from .yaml_source import Entries, scalar_value

ACTION_KINDS = ("slot", "message", "push", "notify", "set_trait", "tag")
SLOT_CONTENT_KEYS = ("html", "json")  # what a slot action shows, beside its `slot`
NOTIFY_KEYS = ("channels", "type", "title", "body", "link", "cta")
MESSAGE_TYPES = ("banner", "modal", "toast")
MESSAGE_KEYS = ("type", "title", "body", "cta")
CTA_KEYS = ("label", "url")
PUSH_KEYS = ("title", "body", "link")

# Bounds on json slot content and set_trait values (per document).
MAX_JSON_DEPTH = 32
MAX_JSON_VALUES = 100_000


class NodeReader(Protocol):
    """The generic readers of one document that actions are read with."""

    problems: list[Problem]

    def report(self, node: yaml.Node, message: str) -> None: ...

    def mapping(self, node: yaml.Node, what: str, allowed: tuple[str, ...]) -> Entries | None: ...

    def missing(self, node: yaml.Node, entries: Entries, key: str, what: str) -> bool: ...

    def text(self, node: yaml.Node, what: str) -> str | None: ...

    def string_list(self, node: yaml.Node, what: str) -> list[tuple[yaml.Node, str]]: ...

    def template(self, node: yaml.Node, what: str, html: bool = False) -> Template | None: ...

    def template_from_text(
        self, text: str, node: yaml.ScalarNode, kind: str
    ) -> Template | None: ...


class ActionReader:
    """Reads the actions of the rules of one document, reporting through its reader."""

    def __init__(self, reader: NodeReader) -> None:
        # The reader's primitives under the same names, so that action code reads
        # like the rest of the schema; `problems` is the reader's own list.
        self.problems = reader.problems
        self.report = reader.report
        self.mapping = reader.mapping
        self.missing = reader.missing
        self.text = reader.text
        self.string_list = reader.string_list
        self.template = reader.template
        self.template_from_text = reader.template_from_text
        # One budget for the whole document: aliases can repeat a value across rules too.
        self.json_budget = MAX_JSON_VALUES
        self.json_limit_reported = False

    def actions(self, node: yaml.Node) -> tuple[list[Action], bool]:
        """The actions that could be read, and whether all of them could."""
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self.report(node, "actions must be a non-empty list")
            return [], False
        actions: list[Action] = []
        ok = True
        for item in node.value:
            action = self.action(item)
            if action is None:
                ok = False
            else:
                actions.append(action)
        return actions, ok

    def action(self, node: yaml.Node) -> Action | None:
        entries = self.mapping(node, "an action", ())
        if entries is None:
            return None
        kinds = [key for key in entries if key in ACTION_KINDS]
        if not kinds:
            unknown = [key for key in entries if key not in SLOT_CONTENT_KEYS]
            for key in unknown:  # most likely the kind, misspelt: name it where it is
                self.report(entries[key][0],
                            f"unknown action key {key!r}{did_you_mean(key, ACTION_KINDS)}; "
                            f"an action has one of: {', '.join(ACTION_KINDS)}")
            if not unknown:
                self.report(node, f"an action needs one of: {', '.join(ACTION_KINDS)}")
            return None
        if len(kinds) > 1:
            self.report(
                entries[kinds[1]][0],
                f"an action has exactly one of {', '.join(ACTION_KINDS)}; "
                f"found {kinds[0]} and {kinds[1]}",
            )
            return None
        kind = kinds[0]
        allowed = ("slot", *SLOT_CONTENT_KEYS) if kind == "slot" else (kind,)
        for key, (key_node, _) in entries.items():
            if key not in allowed:
                self.report(
                    key_node,
                    f"unknown key {key!r} in a {kind} action{did_you_mean(key, allowed)}; "
                    f"expected one of: {', '.join(allowed)}",
                )
                return None
        value_node = entries[kind][1]
        if kind == "slot":
            return self.slot_action(node, entries)
        if kind == "message":
            return self.message_action(value_node)
        if kind == "push":
            return self.push_action(value_node)
        if kind == "notify":
            return self.notify_action(value_node)
        if kind == "set_trait":
            return self.set_trait_action(value_node)
        return self.tag_action(value_node)

    def slot_action(self, node: yaml.Node, entries: Entries) -> SlotAction | None:
        slot = self.text(entries["slot"][1], "slot")
        contents = [key for key in ("html", "json") if key in entries]
        if len(contents) != 1:
            where = entries["json"][0] if len(contents) == 2 else node
            self.report(where, "a slot action needs exactly one of html or json")
            return None
        if contents[0] == "html":
            html = self.template(entries["html"][1], "html", html=True)
            return None if slot is None or html is None else SlotAction(slot, html=html)
        problems_before = len(self.problems)
        content = self.json_content(entries["json"][1], templates=True)
        if slot is None or len(self.problems) > problems_before:
            return None
        return SlotAction(slot, json=content)

    def message_action(self, node: yaml.Node) -> MessageAction | None:
        entries = self.mapping(node, "message", MESSAGE_KEYS)
        if entries is None or self.missing(node, entries, "type", "message"):
            return None
        type_node = entries["type"][1]
        message_type = self.text(type_node, "message type")
        ok = message_type is not None
        if message_type is not None and message_type not in MESSAGE_TYPES:
            self.report(type_node, f"message type must be one of: {', '.join(MESSAGE_TYPES)}")
            ok = False
        fields: dict[str, Template] = {}
        for key in ("title", "body"):
            if key in entries:
                template = self.template(entries[key][1], key)
                ok = ok and template is not None
                if template is not None:
                    fields[key] = template
        cta = None
        if "cta" in entries:
            cta = self.cta(entries["cta"][1])
            ok = ok and cta is not None
        return MessageAction(message_type, fields, cta) if ok else None  # type: ignore[arg-type]

    def cta(self, node: yaml.Node) -> dict[str, Template] | None:
        entries = self.mapping(node, "cta", CTA_KEYS)
        if entries is None:
            return None
        cta: dict[str, Template] = {}
        ok = True
        for key in CTA_KEYS:
            if self.missing(node, entries, key, "cta"):
                ok = False
                continue
            template = self.template(entries[key][1], key)
            ok = ok and template is not None
            if template is not None:
                cta[key] = template
        return cta if ok else None

    def push_action(self, node: yaml.Node) -> PushAction | None:
        entries = self.mapping(node, "push", PUSH_KEYS)
        if entries is None or self.missing(node, entries, "title", "push"):
            return None
        title = self.template(entries["title"][1], "title")
        body = self.template(entries["body"][1], "body") if "body" in entries else None
        link = self.template(entries["link"][1], "link") if "link" in entries else None
        if title is None or ("body" in entries and body is None) or ("link" in entries and link is None):
            return None
        return PushAction(title, body, link)

    def notify_action(self, node: yaml.Node) -> NotifyAction | None:
        """A message for whichever of its channels suits the person (see rules.channels)."""
        entries = self.mapping(node, "notify", NOTIFY_KEYS)
        if entries is None or self.missing(node, entries, "channels", "notify"):
            return None
        ok = True
        channels: list[str] = []
        for item_node, text in self.string_list(entries["channels"][1], "channels"):
            if text not in NOTIFY_CHANNELS:
                self.report(item_node, f"unknown channel {text!r}; expected one of: "
                                       f"{', '.join(NOTIFY_CHANNELS)}")
                ok = False
            elif text not in channels:
                channels.append(text)
        message_type = "banner"
        if "type" in entries:
            message_type = self.text(entries["type"][1], "type") or ""
            if message_type not in MESSAGE_TYPES:
                self.report(entries["type"][1], f"type must be one of: {', '.join(MESSAGE_TYPES)}")
                ok = False
        if self.missing(node, entries, "title", "notify"):
            ok = False
        fields: dict[str, Template] = {}
        for key in ("title", "body"):
            if key in entries:
                template = self.template(entries[key][1], key)
                ok = ok and template is not None
                if template is not None:
                    fields[key] = template
        link = self.template(entries["link"][1], "link") if "link" in entries else None
        ok = ok and ("link" not in entries or link is not None)
        cta = self.cta(entries["cta"][1]) if "cta" in entries else None
        ok = ok and ("cta" not in entries or cta is not None)
        if not ok or not channels:
            return None
        return NotifyAction(tuple(channels), message_type, fields, link, cta)

    def set_trait_action(self, node: yaml.Node) -> SetTraitAction | None:
        entries = self.mapping(node, "set_trait", ())
        if entries is None:
            return None
        if not entries:
            self.report(node, "set_trait needs at least one trait")
            return None
        problems_before = len(self.problems)
        values = {
            key: self.json_content(value_node, templates=False)
            for key, (_, value_node) in entries.items()
        }
        return SetTraitAction(values) if len(self.problems) == problems_before else None

    def tag_action(self, node: yaml.Node) -> TagAction | None:
        tags = [text for _, text in self.string_list(node, "tag")]
        if not tags:
            return None
        return TagAction(tuple(dict.fromkeys(tags)))

    def json_content(self, node: yaml.Node, templates: bool, depth: int = 0) -> JsonTemplate:
        """A YAML value as JSON; with `templates`, strings may hold {{ placeholders }}."""
        # YAML aliases can nest a value in itself or repeat it exponentially; stop early.
        self.json_budget -= 1
        if depth > MAX_JSON_DEPTH or self.json_budget < 0:
            if not self.json_limit_reported:
                self.json_limit_reported = True
                self.report(
                    node,
                    f"value is too large (at most {MAX_JSON_DEPTH} levels deep "
                    f"and {MAX_JSON_VALUES} values per document)",
                )
            return None
        if isinstance(node, yaml.MappingNode):
            entries = self.mapping(node, "a json object", ())
            return {
                key: self.json_content(value, templates, depth + 1)
                for key, (_, value) in (entries or {}).items()
            }
        if isinstance(node, yaml.SequenceNode):
            return [self.json_content(item, templates, depth + 1) for item in node.value]
        value = scalar_value(node)  # type: ignore[arg-type]
        if isinstance(value, float) and not math.isfinite(value):
            self.report(node, "numbers must be finite (JSON has no infinity or NaN)")
            return None
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            if not templates:
                self.report(
                    node, "set_trait values are literal; placeholders are not supported here"
                )
                return None
            return self.template_from_text(value, node, "value")  # type: ignore[arg-type]
        return value
