"""Splitting template text into literal text and {{ expression }} placeholders."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlaceholderText:
    """The expression text between {{ and }}, and its offset in the template."""

    text: str
    offset: int


class TemplateSyntaxError(Exception):
    def __init__(self, pos: int, message: str) -> None:
        super().__init__(message)
        self.pos = pos
        self.message = message


def split_template(text: str) -> list[str | PlaceholderText]:
    """Literal strings and placeholders in order; empty literals are left out."""
    parts: list[str | PlaceholderText] = []
    position = 0
    while True:
        opening = text.find("{{", position)
        if opening < 0:
            if position < len(text):
                parts.append(text[position:])
            return parts
        if opening > position:
            parts.append(text[position:opening])
        start = opening + 2
        closing = _find_closing(text, start)
        if closing < 0:
            raise TemplateSyntaxError(opening, "placeholder '{{' is not closed with '}}'")
        inner = text[start:closing]
        if not inner.strip():
            raise TemplateSyntaxError(opening, "placeholder '{{ }}' is empty")
        parts.append(PlaceholderText(inner, start))
        position = closing + 2


def _find_closing(text: str, start: int) -> int:
    """Index of the '}}' ending a placeholder, skipping '}}' inside string literals."""
    quote: str | None = None
    index = start
    while index < len(text):
        char = text[index]
        if quote is not None:
            if char == "\\":
                index += 2
                continue
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif text.startswith("}}", index):
            return index
        index += 1
    return -1
