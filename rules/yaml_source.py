"""Reading YAML as positioned nodes, and mapping offsets inside scalars to line:column.

Documents are composed (not constructed) so that every value keeps its marks;
the schema walks the nodes and reports problems where they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import yaml

from .problems import Problem

try:  # libyaml is much faster and reports the same marks
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader

Locator = Callable[[int], tuple[int, int]]
# A mapping node's entries by key: (key node, value node), as the schema reads them.
Entries = dict[str, tuple[yaml.Node, yaml.Node]]


class SourceText:
    """One named document text; turns node marks into 1-based positions."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text
        self.lines = text.split("\n")

    def problem(self, line: int, column: int, message: str) -> Problem:
        return Problem(self.name, line, column, message)

    def node_problem(self, node: yaml.Node, message: str) -> Problem:
        line, column = node_position(node)
        return Problem(self.name, line, column, message)

    def locator(self, node: yaml.ScalarNode) -> Locator:
        """Maps an offset in the scalar's value to a position in the file.

        Exact for plain and quoted one-line scalars without escapes and for
        literal blocks (|); otherwise it falls back to the scalar's start.
        """
        start = node.start_mark
        end = node.end_mark
        value = node.value
        style = node.style or None
        fallback = node_position(node)

        if style in (None, "'", '"') and start.line == end.line and "\n" not in value:
            raw = (
                self.lines[start.line][start.column : end.column]
                if start.line < len(self.lines)
                else ""
            )
            quote_width = 0 if style is None else 1
            if raw[quote_width : len(raw) - quote_width] == value:
                return lambda offset: (start.line + 1, start.column + quote_width + offset + 1)
            return lambda offset: fallback

        if style == "|":
            return self._literal_block_locator(node, fallback)
        return lambda offset: fallback

    def _literal_block_locator(self, node: yaml.ScalarNode, fallback: tuple[int, int]) -> Locator:
        first_line = node.start_mark.line + 1
        value_lines = node.value.split("\n")
        if first_line >= len(self.lines):
            return lambda offset: fallback
        source_line = self.lines[first_line]
        indent = len(source_line) - len(source_line.lstrip(" "))
        # Only trust the mapping when every value line sits verbatim under the indent.
        for index, value_line in enumerate(value_lines):
            if not value_line:
                continue
            line_number = first_line + index
            if line_number >= len(self.lines) or self.lines[line_number][indent:] != value_line:
                return lambda offset: fallback

        def locate(offset: int) -> tuple[int, int]:
            before = node.value[:offset]
            line_index = before.count("\n")
            column = offset - (before.rfind("\n") + 1)
            return first_line + line_index + 1, indent + column + 1

        return locate


def node_position(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def compose_documents(source: SourceText, problems: list[Problem]) -> Iterator[yaml.Node]:
    """Yields each YAML document's root node; a syntax error becomes a Problem."""
    try:
        for node in yaml.compose_all(source.text, Loader=_Loader):
            if node is not None:
                yield node
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        message = f"YAML: {error.problem or error.context}"
        if mark is None:
            problems.append(source.problem(1, 1, message))
        else:
            problems.append(source.problem(mark.line + 1, mark.column + 1, message))
    except yaml.YAMLError as error:
        problems.append(source.problem(1, 1, f"YAML: {error}"))


_constructor = yaml.constructor.SafeConstructor()


def scalar_value(node: yaml.ScalarNode) -> object:
    """The JSON value of a scalar, by YAML's own rules; dates and the like stay text."""
    # Call the tag's constructor directly: construct_object would remember every node.
    construct = yaml.constructor.SafeConstructor.yaml_constructors.get(node.tag)
    if construct is None:
        return node.value
    try:
        value = construct(_constructor, node)
    except (yaml.YAMLError, ValueError):
        return node.value
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return node.value
