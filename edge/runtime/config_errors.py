"""Problems in `kairos.yaml` in plain words, at the line and column where they are.

msgspec reports what is wrong as a path (``Object contains unknown field
`max_batch_event` - at `$.limits` ``), with `[...]` for a key of a mapping such as
`sites`. This module finds the node the path leads to in the YAML (trying each key
where msgspec gives none), says the problem as an operator would, and puts
`file:line:column:` in front, as `kairos check` does for rule files.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import yaml

from rules.suggest import did_you_mean

# A setting's path: names of mappings' keys and positions in lists.
SettingPath = tuple[str | int, ...]

_AT = re.compile(r"^(?P<message>.*) - at `\$(?P<path>.*)`$", re.DOTALL)
_SEGMENT = re.compile(r"\.(?P<name>[^.\[]+)|\[(?P<index>\d+)\]|\[(?P<key>\.\.\.)\]")
_EXPECTED = re.compile(r"^Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_KINDS = {"int": "a whole number", "float": "a number", "str": "text", "bool": "true or false",
          "array": "a list", "object": "a mapping", "null": "empty"}


def _words(kind: str) -> str:
    return " or ".join(_KINDS.get(part.strip(), part.strip()) for part in kind.split("|"))


def describe(path: SettingPath, hide: typing.Callable[[SettingPath], SettingPath]) -> str:
    """A path as dotted text (`sites.demo.origins[0]`), with what `hide` masks masked."""
    text = ""
    for part in hide(path):
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the top level"


# Fields of the settings the loader fills in itself: not for the file.
INTERNAL_FIELDS = frozenset({"config_dir"})


def node_at(root: yaml.Node | None, path: SettingPath, key: bool = False) -> yaml.Node | None:
    """The deepest node along `path` (the key's own node for the last step, with `key`)."""
    node = root
    for depth, part in enumerate(path):
        found = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                    last = depth == len(path) - 1
                    found = key_node if key and last else value_node
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                and part < len(node.value):
            found = node.value[part]
        if found is None:
            return node
        node = found
    return node


def position(root: yaml.Node | None, path: SettingPath, key: bool = False) -> str:
    node = node_at(root, path, key)
    if node is None:
        return "1:1"
    return f"{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def compose(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None


def explain_validation(error: msgspec.ValidationError, raw: Any, settings_type: type,
                       hide: typing.Callable[[SettingPath], SettingPath]
                       ) -> tuple[SettingPath, bool, str]:
    """(path, whether the path ends at a key rather than a value, message in plain words)."""
    matched = _AT.match(str(error))
    message, at = (matched["message"], matched["path"]) if matched else (str(error), "")
    path, kind = _resolve(at, raw, settings_type)
    where = describe(path, hide)
    if found := _UNKNOWN.match(message):
        field = found["field"]
        known = [name for name in _field_names(kind) if name not in INTERNAL_FIELDS]
        return (*path, field), True, (
            f"unknown setting {field!r} {'at' if not path else 'in'} {where}{did_you_mean(field, known)}; "
            f"expected one of: {', '.join(known)}")
    if found := _MISSING.match(message):
        return path, bool(path), f"{where} needs {found['field']!r}"  # at the name of what lacks it
    if found := _EXPECTED.match(message):
        return path, False, f"{where} must be {_words(found['want'])}, not {_words(found['got'])}"
    return path, False, f"{where}: {message}"


def _resolve(at: str, raw: Any, kind: Any) -> tuple[SettingPath, Any]:
    """The path msgspec means, with each `[...]` replaced by the key whose value fails,
    and the type expected where it ends."""
    path: list[str | int] = []
    for segment in _SEGMENT.finditer(at):
        if segment["name"] is not None:
            name = segment["name"]
            kind = _field_type(kind, name)
            raw = raw.get(name) if isinstance(raw, dict) else None
            path.append(name)
        elif segment["index"] is not None:
            index = int(segment["index"])
            kind = _item_type(kind)
            raw = raw[index] if isinstance(raw, list) and index < len(raw) else None
            path.append(index)
        else:
            kind = _value_type(kind)
            key = _failing_key(raw, kind)
            if key is None:
                break
            raw = raw[key]
            path.append(key)
    return tuple(path), kind


def _failing_key(raw: Any, value_type: Any) -> str | None:
    if not isinstance(raw, dict):
        return None
    for key, value in raw.items():
        try:
            msgspec.convert(value, value_type)
        except msgspec.ValidationError:
            return str(key)
    return None


def _struct(kind: Any) -> type[msgspec.Struct] | None:
    for option in _options(kind):
        if isinstance(option, type) and issubclass(option, msgspec.Struct):
            return option
    return None


def _options(kind: Any) -> Sequence[Any]:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return typing.get_args(kind)
    return (kind,)


def _field_names(kind: Any) -> list[str]:
    struct = _struct(kind)
    return [f.encode_name for f in msgspec.structs.fields(struct)] if struct else []


def _field_type(kind: Any, name: str) -> Any:
    struct = _struct(kind)
    if struct is None:
        return Any
    for f in msgspec.structs.fields(struct):
        if f.encode_name == name:
            return f.type
    return Any


def _container_args(kind: Any) -> tuple[Any, ...]:
    for option in _options(kind):
        if typing.get_origin(option) in (dict, list, tuple, set, frozenset):
            return typing.get_args(option)
    return ()


def _value_type(kind: Any) -> Any:
    args = _container_args(kind)
    return args[-1] if args else Any


def _item_type(kind: Any) -> Any:
    args = _container_args(kind)
    return args[0] if args else Any


def located(file: Path, root: yaml.Node | None, path: SettingPath, message: str,
            key: bool = False) -> str:
    return f"{file}:{position(root, path, key)}: {message}"
