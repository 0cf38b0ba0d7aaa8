"""What an operator is told about a configuration file that cannot be used: the file, the
line, the key, what was wrong and a right value to write instead (see config.py).

TOML's parser gives a line for syntax errors; pydantic gives a key path for the rest, which a
small index of the text turns into a line (`_KeyIndex`).
"""

from __future__ import annotations

import difflib
import re
import tomllib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError


class ConfigError(ValueError):
    """The configuration file cannot be used. `str(err)` is ready to show to an operator."""

    def __init__(
        self, message: str, *, path: Path | None = None, line: int | None = None, key: str = ""
    ) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.key = key


_TOML_POSITION = re.compile(r"\(at line (\d+), column \d+\)")


def syntax_error(
    exc: tomllib.TOMLDecodeError, text: str, name: str, source: Path | None
) -> ConfigError:
    match = _TOML_POSITION.search(str(exc))
    line = int(match[1]) if match else None
    reason = _TOML_POSITION.sub("", str(exc)).strip()
    if line is None:
        return ConfigError(f"{name}: invalid TOML: {reason}", path=source)
    lines = text.splitlines()
    content = lines[line - 1].strip() if 0 < line <= len(lines) else ""
    unclosed = _unclosed_before(lines, line)
    if unclosed is not None:
        return _unclosed_error(unclosed, lines, name, source, line)
    key, where = _located(lines, line, content, name)
    return ConfigError(
        f"{where}: invalid TOML ({reason}): {content!r}{_syntax_hint(content)}",
        path=source, line=line, key=key,
    )


def _located(lines: list[str], line: int, content: str, name: str) -> tuple[str, str]:
    """The key written on `line` and the words that place it: `file, line 3, key a.b`."""
    entries = _KeyIndex("\n".join(lines[:line])).entries
    key = _dotted(entries[-1][0]) if entries and entries[-1][1] == line else _line_key(content)
    return key, f"{name}, line {line}" + (f", key {key}" if key else "")


_BARE_VALUE = re.compile(r"^[^=]+=\s*[A-Za-z0-9][^\"'\[{]*$")
_STATEMENT = re.compile(r"^\s*(\[|[A-Za-z0-9_\-\"']+(\s*\.\s*[A-Za-z0-9_\-\"']+)*\s*=)")
_CLOSING = {"[": "]", "{": "}"}


def _syntax_hint(content: str) -> str:
    if _BARE_VALUE.match(content) and not re.search(r"=\s*(true|false|[-+]?\d[\d_.]*)\s*$",
                                                     content):
        return ' (hint: text values such as durations and ids need quotes, e.g. tick = "30s")'
    return ""


def _unclosed_before(lines: list[str], error_line: int) -> tuple[int, str] | None:
    """The line and bracket of a list or inline table still open when the parser met line
    `error_line`, if that line starts a new statement: the mistake is where it was opened."""
    if error_line > len(lines) or not _STATEMENT.match(lines[error_line - 1]):
        return None
    stack: list[tuple[int, str]] = []
    for number, raw in enumerate(lines[: error_line - 1], start=1):
        quote = ""
        for char in raw:
            if quote:
                quote = "" if char == quote else quote
            elif char in "\"'":
                quote = char
            elif char == "#":
                break
            elif char in _CLOSING:
                stack.append((number, char))
            elif char in "]}" and stack:
                stack.pop()
        if quote:
            return None  # a multi-line string: not this heuristic's business
        if not stack and _HEADER.match(raw):
            continue
    return stack[0] if stack else None


def _unclosed_error(unclosed: tuple[int, str], lines: list[str], name: str,
                    source: Path | None, error_line: int) -> ConfigError:
    line, bracket = unclosed
    content = lines[line - 1].strip()
    key, where = _located(lines, line, content, name)
    what = "list" if bracket == "[" else "inline table"
    return ConfigError(
        f"{where}: invalid TOML: the {what} opened here is not closed with "
        f"{_CLOSING[bracket]} before line {error_line}: {content!r}",
        path=source, line=line, key=key,
    )


def validation_error(
    exc: ValidationError, text: str, name: str, source: Path | None, schema: type[BaseModel]
) -> ConfigError:
    index = _KeyIndex(text)
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        # pydantic marks a bad dict key with a trailing "[key]"; the key itself is the culprit.
        where = loc[:-1] if loc and loc[-1] == "[key]" else loc
        line = index.line_of(where)
        key = _dotted(where)
        problems.append((line, key, _explain(error, loc, schema)))
    problems.sort(key=lambda p: (p[0] is None, p[0] or 0))
    first_line, first_key, _ = problems[0]
    lines = [
        f"{name}" + (f", line {line}" if line else "") + f", key {key}: {why}"
        for line, key, why in problems
    ]
    return ConfigError("\n".join(lines), path=source, line=first_line, key=first_key)


def _dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _explain(error: Any, loc: Sequence[str | int], schema: type[BaseModel]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _known_keys(schema, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown key; {hint}known keys here: {', '.join(known)}"
    if kind == "missing":
        return "this key is required"
    if loc and loc[-1] == "[key]":
        allowed = ", ".join(_allowed_keys(schema, loc[:-2]))
        return f"{loc[-2]!r} is not an operation that takes its own policy; use one of {allowed}"
    worded = _type_error(error, loc, schema)
    if worded:
        return worded
    message = str(error["msg"])
    # Our own validators raise ValueError; pydantic prefixes those with "Value error, ".
    return message.removeprefix("Value error, ")


# What a key expects, in the bot's words, by pydantic's error type.
_EXPECTED = {
    "tuple_type": "a list", "list_type": "a list",
    "int_type": "a whole number", "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "bool_type": "true or false (without quotes)", "bool_parsing": "true or false (without quotes)",
    "string_type": "text in quotes",
    "dict_type": "a table", "model_type": "a table",
}
# An example of a right value per key; keys not named here get one from their kind.
_EXAMPLES = {
    "requesters": '["*"] or ["U0123ABCD", "S0456EFGH"]',
    "approvers": '["U0123ABCD"]',
    "escalation_approvers": '["S0789IJKL"]',
    "device_types": '["Gas meter"]',
    "groups": '["Acme Logistics"]',
    "routes": '[[alerts.routes]] tables',
    "operations": "[policy.operations.restart]",
}


def _type_error(error: Any, loc: Sequence[str | int], schema: type[BaseModel]) -> str:
    """`approvers must be a list of ids, like ["U0123ABCD"]; got the text "U0123ABCD"`."""
    kind = error["type"]
    names = [part for part in loc if isinstance(part, str)]
    key = names[-1] if names else "this value"
    given = _described(error.get("input"))
    ctx = error.get("ctx") or {}
    if kind in ("greater_than_equal", "less_than_equal"):
        bound = ctx.get("ge", ctx.get("le"))
        side = "at least" if kind == "greater_than_equal" else "at most"
        return f"{key} must be {side} {bound}; got {given}"
    expected = _EXPECTED.get(kind)
    if expected is None:
        return ""
    if expected == "a list" and key in ("requesters", "approvers", "escalation_approvers"):
        expected = "a list of ids"
    example = _EXAMPLES.get(key) or _example_of(kind, loc, schema)
    like = f", like {example}" if example else ""
    return f"{key} must be {expected}{like}; got {given}"


def _example_of(kind: str, loc: Sequence[str | int], schema: type[BaseModel]) -> str:
    if kind.startswith("int"):
        default = _default_of(schema, loc)
        return str(default) if isinstance(default, int) and not isinstance(default, bool) else "1"
    return ""


def _default_of(schema: type[BaseModel], loc: Sequence[str | int]) -> Any:
    model: Any = schema
    value: Any = None
    for part in loc:
        if not (isinstance(part, str) and isinstance(model, type)
                and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(part)
        if field is None:
            return None
        value = field.default
        model = field.annotation
    return value


def _described(value: Any) -> str:
    """A given value as words: `the text "30"`, `the number 5`, `true`, `a list`, `a table`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'the text "{value}"'
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return f"{value!r}"


def _known_keys(schema: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """Keys allowed in the table at `loc`, by walking the models (for "did you mean")."""
    model: Any = schema
    skip = 0
    for part in loc:
        if skip:
            skip -= 1
            continue
        if isinstance(part, int) or not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        model, skip = _inner_model(field.annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _allowed_keys(schema: type[BaseModel], loc: Sequence[str | int]) -> tuple[str, ...]:
    """The keys the table of tables at `loc` allows, read from its `dict[Literal[...], ...]`."""
    model: Any = schema
    annotation: Any = None
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return ()
        field = model.model_fields.get(str(part))
        if field is None:
            return ()
        annotation = field.annotation
        model, _ = _inner_model(annotation)
    key_type = typing.get_args(annotation)[0] if typing.get_origin(annotation) is dict else None
    return tuple(str(k) for k in typing.get_args(key_type))


def _inner_model(annotation: Any) -> tuple[Any, int]:
    """The model inside `annotation`, and how many loc parts its container adds (index/key)."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, types.UnionType) and args:
        return _inner_model(args[0])
    if origin is dict:
        return args[1], 1
    if origin is tuple:
        return args[0], 1
    return annotation, 0


_HEADER = re.compile(r"\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY_PART = r"(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')"
_KEY_LINE = re.compile(rf"\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*=")


def _split_key(dotted: str) -> list[str]:
    parts = re.findall(r"\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+)", dotted)
    return [a or b or c for a, b, c in parts]


def _line_key(content: str) -> str:
    match = _KEY_LINE.match(content)
    return ".".join(_split_key(match[1])) if match else ""


@dataclass
class _KeyIndex:
    """Where each table and key sits in the TOML text, to point a validation error at a line.

    A heuristic (no TOML position data exists), good for the hand-written files this is for:
    headers `[a.b]` and `[[a.b]]` (numbered by occurrence) and `key = ...` lines.
    """

    text: str

    def __post_init__(self) -> None:
        self.entries: list[tuple[tuple[str | int, ...], int]] = []
        table: tuple[str | int, ...] = ()
        array_counts: dict[tuple[str, ...], int] = {}
        for number, raw in enumerate(self.text.splitlines(), start=1):
            if header := _HEADER.match(raw):
                names = tuple(_split_key(header[2]))
                if header[1] == "[[":
                    index = array_counts.get(names, 0)
                    array_counts[names] = index + 1
                    table = (*names, index)
                else:
                    table = names
                self.entries.append((table, number))
            elif key := _KEY_LINE.match(raw):
                self.entries.append(((*table, *_split_key(key[1])), number))

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        best_line, best_len = None, 0
        for path, number in self.entries:
            common = _common_prefix(path, loc)
            if common == len(path) and common > best_len:
                best_line, best_len = number, common
        return best_line


def _common_prefix(a: Sequence[str | int], b: Sequence[str | int]) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count
