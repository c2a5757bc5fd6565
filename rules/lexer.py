"""Tokenizer for the expression language.

It whitelists what may appear: anything it does not recognise is an error, so
no user text ever reaches Python's compiler except through repr()'d literals and
identifiers checked against [A-Za-z_][A-Za-z0-9_]*.
"""

from __future__ import annotations

from dataclasses import dataclass

from .durations import UNIT_MS

KEYWORDS = frozenset(
    {
        "and",
        "or",
        "not",
        "in",
        "true",
        "false",
        "null",
        "contains",
        "starts_with",
        "ends_with",
        "matches",
    }
)

# Longest operators first so that "<=" is not read as "<" then "=".
OPERATORS = (
    "==",
    "!=",
    "<=",
    ">=",
    "<",
    ">",
    "+",
    "-",
    "*",
    "/",
    "%",
    "(",
    ")",
    "[",
    "]",
    ",",
    ".",
)

# Helpful messages for spellings people bring from other languages.
MISSPELLED_OPERATORS = {
    "&&": "use 'and' instead of '&&'",
    "||": "use 'or' instead of '||'",
    "=": "use '==' to compare",
    "!": "use 'not' instead of '!'",
}

MAX_NUMBER_DIGITS = 40
MAX_EXPRESSION_LENGTH = 10_000

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "/": "/", "0": "\0"}


class ExpressionSyntaxError(Exception):
    """A problem at a character offset of the expression text."""

    def __init__(self, pos: int, message: str) -> None:
        super().__init__(message)
        self.pos = pos
        self.message = message


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "number", "string", "name", "keyword", "op", "end"
    value: object
    pos: int
    text: str


def _is_name_start(char: str) -> bool:
    return char == "_" or ("a" <= char <= "z") or ("A" <= char <= "Z")


def _is_name_char(char: str) -> bool:
    return _is_name_start(char) or ("0" <= char <= "9")


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionSyntaxError(
            0, f"expression is longer than {MAX_EXPRESSION_LENGTH} characters"
        )
    tokens: list[Token] = []
    pos = 0
    length = len(text)
    while pos < length:
        char = text[pos]
        if char in " \t\r\n":
            pos += 1
        elif "0" <= char <= "9":
            token, pos = _read_number(text, pos)
            tokens.append(token)
        elif char in "\"'":
            token, pos = _read_string(text, pos)
            tokens.append(token)
        elif _is_name_start(char):
            end = pos + 1
            while end < length and _is_name_char(text[end]):
                end += 1
            word = text[pos:end]
            kind = "keyword" if word in KEYWORDS else "name"
            tokens.append(Token(kind, word, pos, word))
            pos = end
        else:
            token, pos = _read_operator(text, pos)
            tokens.append(token)
    tokens.append(Token("end", None, length, ""))
    return tokens


def _read_operator(text: str, pos: int) -> tuple[Token, int]:
    for bad in ("&&", "||"):
        if text.startswith(bad, pos):
            raise ExpressionSyntaxError(pos, MISSPELLED_OPERATORS[bad])
    for op in OPERATORS:
        if text.startswith(op, pos):
            return Token("op", op, pos, op), pos + len(op)
    char = text[pos]
    if char in MISSPELLED_OPERATORS:
        raise ExpressionSyntaxError(pos, MISSPELLED_OPERATORS[char])
    raise ExpressionSyntaxError(pos, f"unexpected character {char!r}")


def _read_number(text: str, start: int) -> tuple[Token, int]:
    length = len(text)
    pos = start
    while pos < length and text[pos].isdigit() and text[pos].isascii():
        pos += 1
    is_float = False
    if pos + 1 < length and text[pos] == "." and text[pos + 1].isdigit():
        is_float = True
        pos += 1
        while pos < length and text[pos].isdigit() and text[pos].isascii():
            pos += 1
    if pos < length and text[pos] in "eE":
        exponent_end = pos + 1
        if exponent_end < length and text[exponent_end] in "+-":
            exponent_end += 1
        if exponent_end < length and text[exponent_end].isdigit():
            is_float = True
            pos = exponent_end
            while pos < length and text[pos].isdigit() and text[pos].isascii():
                pos += 1
    digits = text[start:pos]
    if len(digits) > MAX_NUMBER_DIGITS:
        raise ExpressionSyntaxError(start, f"number has more than {MAX_NUMBER_DIGITS} characters")
    # A unit glued to the number makes it a duration: 30s, 15m, 2h, 7d.
    unit_end = pos
    while unit_end < length and _is_name_char(text[unit_end]):
        unit_end += 1
    unit = text[pos:unit_end]
    if unit:
        if unit not in UNIT_MS:
            raise ExpressionSyntaxError(
                pos, f"unknown duration unit {unit!r} (use ms, s, m, h, d or w)"
            )
        if is_float:
            raise ExpressionSyntaxError(
                start, "a duration must be a whole number, e.g. 90m instead of 1.5h"
            )
        value = int(digits) * UNIT_MS[unit]
        return Token("number", value, start, text[start:unit_end]), unit_end
    value = float(digits) if is_float else int(digits)
    return Token("number", value, start, digits), pos


def _read_string(text: str, start: int) -> tuple[Token, int]:
    quote = text[start]
    pos = start + 1
    length = len(text)
    pieces: list[str] = []
    while pos < length:
        char = text[pos]
        if char == quote:
            return Token("string", "".join(pieces), start, text[start : pos + 1]), pos + 1
        if char == "\\":
            if pos + 1 >= length:
                break
            escape = text[pos + 1]
            if escape == "u":
                hex_digits = text[pos + 2 : pos + 6]
                if len(hex_digits) != 4 or any(
                    c not in "0123456789abcdefABCDEF" for c in hex_digits
                ):
                    raise ExpressionSyntaxError(pos, "\\u must be followed by four hex digits")
                pieces.append(chr(int(hex_digits, 16)))
                pos += 6
                continue
            if escape not in _ESCAPES:
                raise ExpressionSyntaxError(pos, f"unknown escape \\{escape} in string")
            pieces.append(_ESCAPES[escape])
            pos += 2
            continue
        pieces.append(char)
        pos += 1
    raise ExpressionSyntaxError(start, "string is not closed")
