"""Every Lua script reads and returns exactly what edge/store/scripts.py declares.

The declarations are array-like msgspec Structs; Python builds them, and the
scripts name the same fields in the same order where they unpack them. This
test reads each script's source and checks:

- its ARGV is unpacked once, into locals named as the script's ARGV Struct's
  fields, in order, and ARGV is not indexed anywhere else;
- each msgpack argument is unpacked with `elements(...)` into locals named as
  its Struct's fields; a flat list of groups is stepped through by a width
  constant equal to the group's number of fields, each group unpacked into
  locals named as its fields, and read by offset nowhere else;
- every `return {...}` is a declared reply: a status with as many values as
  declared, or the Struct of the whole reply, named field by field (nested
  Structs too);
- every XADD writes the stream entry's fields (edge/store/streams.py) in order,
  the edge's own records with their kind, and only the outbox untrimmed.
"""

from __future__ import annotations

import re

import msgspec
import pytest

from edge.store import scripts, streams

NAME = r"[A-Za-z_]\w*"
NAMES = rf"{NAME}(?:\s*,\s*{NAME})*"


def strip_comments(source: str) -> str:
    """The code without `--` comments (outside string literals)."""
    out, i, quote = [], 0, None
    while i < len(source):
        c = source[i]
        if quote:
            out.append(c)
            if c == "\\":
                out.append(source[i + 1])
                i += 1
            elif c == quote:
                quote = None
        elif c in "'\"":
            quote = c
            out.append(c)
        elif source.startswith("--", i):
            while i < len(source) and source[i] != "\n":
                i += 1
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def balanced(code: str, start: int) -> tuple[str, int]:
    """The text inside the bracket opening at `start`, and the index after its close."""
    pairs = {"(": ")", "{": "}", "[": "]"}
    stack = [pairs[code[start]]]
    i = start + 1
    quote = None
    while stack:
        c = code[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c in pairs:
            stack.append(pairs[c])
        elif c == stack[-1]:
            stack.pop()
        i += 1
    return code[start + 1:i - 1], i


def split_items(text: str) -> list[str]:
    """Top-level comma-separated items."""
    items, depth, quote, current = [], 0, None, []
    for c in text:
        if quote:
            current.append(c)
            if c == quote:
                quote = None
            continue
        if c in "'\"":
            quote = c
        elif c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
        elif c == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
            continue
        current.append(c)
    if "".join(current).strip():
        items.append("".join(current).strip())
    return items


def names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",")]


def fields(struct: type) -> list[str]:
    return list(struct.__struct_fields__)


def width_constant(struct: type) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", struct.__name__).upper() + "_WIDTH"


def argv_problems(script: scripts.Script, code: str) -> list[str]:
    problems = []
    found = re.findall(rf"local\s+({NAMES})\s*=\s*(ARGV\[\d+\](?:\s*,\s*ARGV\[\d+\])*)", code)
    if script.argv is None:
        return [f"{script.name}: reads ARGV without a declaration"] if "ARGV" in code else []
    if len(found) != 1:
        return [f"{script.name}: ARGV should be unpacked exactly once, found {len(found)}"]
    local_names, indexes = found[0]
    if names(local_names) != fields(script.argv):
        problems.append(f"{script.name}: ARGV unpacked as {names(local_names)}, "
                        f"declared {fields(script.argv)}")
    positions = [int(n) for n in re.findall(r"ARGV\[(\d+)\]", indexes)]
    if positions != list(range(1, len(fields(script.argv)) + 1)):
        problems.append(f"{script.name}: ARGV positions {positions}")
    if code.count("ARGV") != len(positions):
        problems.append(f"{script.name}: ARGV is read outside its unpacking")
    return problems


def packed_problems(script: scripts.Script, code: str) -> list[str]:
    problems = []
    for name, declared in script.packed.items():
        if isinstance(declared, tuple):
            problems += group_problems(script, code, name, declared)
            continue
        found = re.findall(rf"(?:local\s+)?({NAMES})\s*=\s*elements\(\s*{name}\s*\)", code)
        if len(found) != 1:
            problems.append(f"{script.name}: {name} should be unpacked exactly once, found {len(found)}")
        elif names(found[0]) != fields(declared):
            problems.append(f"{script.name}: {name} unpacked as {names(found[0])}, "
                            f"declared {fields(declared)} ({declared.__name__})")
    return problems


def group_problems(script: scripts.Script, code: str, name: str,
                   groups: tuple[type, ...]) -> list[str]:
    problems = []
    lists = re.findall(rf"local\s+({NAME})\s*=\s*\{{\s*elements\(\s*{name}\s*\)\s*\}}", code)
    if len(lists) != 1:
        return [f"{script.name}: {name} should be unpacked into one table, found {len(lists)}"]
    table = lists[0]
    widths = {}
    for constants, values in re.findall(r"local\s+([A-Z_]+(?:\s*,\s*[A-Z_]+)*)\s*=\s*(\d+(?:\s*,\s*\d+)*)", code):
        widths.update(zip(names(constants), (int(v) for v in names(values))))
    for group in groups:
        if widths.get(width_constant(group)) != len(fields(group)):
            problems.append(f"{script.name}: {width_constant(group)} should be "
                            f"{len(fields(group))}, is {widths.get(width_constant(group))}")
    access = rf"{table}\[\s*({NAME})\s*(?:\+\s*(\d+)\s*)?\]"
    destructures = list(re.finditer(rf"local\s+({NAMES})\s*=\s*({access}(?:\s*,\s*{access})*)", code))
    unpacked = {group: 0 for group in groups}
    covered = []
    for match in destructures:
        local_names = names(match.group(1))
        reads = re.findall(access, match.group(2))
        index = {var for var, _ in reads}
        offsets = [int(offset or 0) for _, offset in reads]
        group = next((g for g in groups if fields(g) == local_names), None)
        if group is None:
            problems.append(f"{script.name}: {local_names} matches no group of {name} "
                            f"({[g.__name__ for g in groups]})")
            continue
        unpacked[group] += 1
        covered.append(match.span())
        if len(index) != 1 or offsets != list(range(len(local_names))):
            problems.append(f"{script.name}: {group.__name__} read at {reads}")
        loops = re.findall(rf"for\s+{next(iter(index))}\s*=\s*[^\n]+?,\s*([^,\n]+?)\s+do",
                           code[:match.start()])
        if not loops or loops[-1].strip() != width_constant(group):
            problems.append(f"{script.name}: the loop over {group.__name__} should step by "
                            f"{width_constant(group)}, steps by {loops[-1] if loops else None}")
    for group, count in unpacked.items():
        if not count:
            problems.append(f"{script.name}: {group.__name__} is never unpacked from {name}")
    for offset_read in re.finditer(rf"{table}\[\s*{NAME}\s*\+\s*\d+\s*\]", code):
        if not any(start <= offset_read.start() < end for start, end in covered):
            problems.append(f"{script.name}: {offset_read.group()} read outside a group's unpacking")
    return problems


def reply_problems(script: scripts.Script, code: str) -> list[str]:
    problems = []
    structs = {d for d in script.replies.values() if isinstance(d, type)}
    for match in re.finditer(r"\breturn\s*\{", code):
        items = split_items(balanced(code, match.end() - 1)[0])
        literal = re.fullmatch(r"'(\w+)'", items[0]) if items else None
        if literal:
            declared = script.replies.get(literal.group(1))
            if not isinstance(declared, tuple):
                problems.append(f"{script.name}: reply status {literal.group(1)!r} is not declared")
            elif len(items) - 1 != len(declared):
                problems.append(f"{script.name}: {literal.group(1)!r} replies {len(items) - 1} "
                                f"value(s), declared {declared}")
            continue
        struct = next((s for s in structs if fields(s) == items), None)
        if struct is None:
            problems.append(f"{script.name}: reply {items} matches no declared reply")
            continue
        for field, kind in struct.__annotations__.items():
            nested = getattr(scripts, kind, None) if isinstance(kind, str) else kind
            if isinstance(nested, type) and issubclass(nested, msgspec.Struct):
                built = re.search(rf"local\s+{field}\s*=\s*\{{", code)
                if built is None:
                    problems.append(f"{script.name}: {field} is not built as a table")
                    continue
                parts = [re.sub(r"\s+or\s+''$", "", item)
                         for item in split_items(balanced(code, built.end() - 1)[0])]
                if parts != fields(nested):
                    problems.append(f"{script.name}: {field} built as {parts}, "
                                    f"declared {fields(nested)} ({nested.__name__})")
    return problems


def xadd_problems(script: scripts.Script, code: str) -> list[str]:
    problems = []
    kinds = {f"'{k}'" for k in (streams.EXPOSURE, streams.CATALOG, streams.MESSAGE)}
    # effects.lua writes the kind its caller gives each record: streams.kind_of, which
    # knows only the declared record types
    kinds.add("records[i + 1]")
    for match in re.finditer(r"redis\.call(?=\(\s*'XADD')", code):
        args = split_items(balanced(code, match.end())[0])
        key, rest = args[1], args[2:]
        trimmed = rest[0] == "'MAXLEN'"
        if trimmed:
            if rest[1] != "'~'":
                problems.append(f"{script.name}: XADD {key} trims exactly; use MAXLEN ~")
            rest = rest[3:]
        if rest[0] != "'*'":
            problems.append(f"{script.name}: XADD {key} sets its own entry id")
        entry = rest[1:]
        written = [name.strip("'") for name in entry[0::2]]
        if written != list(streams.FIELDS[:len(written)]) or len(written) < 2:
            problems.append(f"{script.name}: XADD {key} writes {written}, "
                            f"an entry is {list(streams.FIELDS)}")
        kind = entry[5] if len(entry) > 5 else None
        if kind is not None and kind not in kinds:
            problems.append(f"{script.name}: XADD {key} writes the unknown kind {kind}")
        if (key == "outbox") != (not trimmed) or (key == "outbox") != (kind == f"'{streams.MESSAGE}'"):
            problems.append(f"{script.name}: XADD {key}: only messages go to the outbox, "
                            "which alone is never trimmed")
    return problems


def contract_problems(script: scripts.Script, source: str) -> list[str]:
    code = strip_comments(source)
    return (argv_problems(script, code) + packed_problems(script, code)
            + reply_problems(script, code) + xadd_problems(script, code))


@pytest.mark.parametrize("script", scripts.EVERY, ids=lambda s: s.name)
def test_the_script_keeps_its_declared_contract(script):
    assert contract_problems(script, script.source) == []


def test_every_declared_argument_is_array_like():
    for script in scripts.EVERY:
        declared = [script.argv, *script.packed.values()]
        for struct in (s for d in declared for s in (d if isinstance(d, tuple) else (d,))):
            if struct is not None:
                assert struct.__struct_config__.array_like, struct.__name__


@pytest.mark.parametrize("script, old, new, complaint", [
    # two fields swapped where the script unpacks them
    (scripts.EVENT, "local mode, primary, now_text, ts_text,", "local mode, primary, ts_text, now_text,",
     "event unpacked as"),
    (scripts.EVENT, "AGGREGATE_UPDATE_WIDTH = 6", "AGGREGATE_UPDATE_WIDTH = 5", "AGGREGATE_UPDATE_WIDTH"),
    (scripts.EVENT, "u[k + 4], u[k + 5]", "u[k + 5], u[k + 4]", "AggregateUpdate read at"),
    (scripts.EVENT, "recent_products, recent_categories, windowed}",
     "recent_categories, recent_products, windowed}", "matches no declared reply"),
    (scripts.EVENT, "sg or '',\n                 tg or ''", "tg or '',\n                 sg or ''",
     "profile built as"),
    (scripts.EVENT, "'p', id, 'e', payload)", "'e', payload, 'p', id)", "XADD stream writes"),
    (scripts.EFFECTS, "local key, times = d[j], d[j + 1]", "local times, key = d[j], d[j + 1]",
     "matches no group"),
    (scripts.EFFECTS, "redis.call('XADD', outbox, '*'", "redis.call('XADD', outbox, 'MAXLEN', '~', stream_max, '*'",
     "never trimmed"),
    (scripts.LINK, "return {'moved', moved}", "return {'moved'}", "'moved' replies 0"),
    (scripts.LINK, "redis.call('HSET', prof, 'uid', user_id)", "redis.call('HSET', prof, 'uid', ARGV[3])",
     "outside its unpacking"),
    (scripts.MERGE, "return {'merged'}", "return {'joined'}", "'joined' is not declared"),
    (scripts.CATALOG_PUT, "'k', 'catalog'", "'k', 'product'", "unknown kind"),
])
def test_a_script_that_breaks_its_contract_is_caught(script, old, new, complaint):
    assert old in script.source
    problems = contract_problems(script, script.source.replace(old, new, 1))
    assert any(complaint in p for p in problems), problems
