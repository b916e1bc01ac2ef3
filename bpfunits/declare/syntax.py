"""The text form of a declared value, as written after Global=NAME= and in Entry=MAP KEY VALUE:
words (`40`, `0x28`, `deny`, `198.19.66.0/24`, `hex:0a0b`), "quoted strings", `[a b c]` lists and
`{member=value ...}` structs. YAML values are turned into this text, so both syntaxes meet here."""

from __future__ import annotations

import re

from bpfunits.errors import BpfUnitsError

Value = str | list["Value"] | dict[str, "Value"]

_TOKEN = re.compile(r'\s*(?:(?P<punct>[{}\[\]=])|"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<word>[^\s{}\[\]="]+))')
_PLAIN = re.compile(r'[^\s{}\[\]="]+')
MAX_DEPTH = 16  # lists and structs within each other: deeper than any BTF type a map or global has


class SyntaxProblem(BpfUnitsError):
    pass


def parse_values(text: str) -> list[Value]:
    """The values written one after another in `text`."""
    tokens = _tokens(text)
    values: list[Value] = []
    while tokens:
        values.append(_value(tokens))
    return values


def parse_value(text: str) -> Value:
    values = parse_values(text)
    if len(values) != 1:
        raise SyntaxProblem(f"expected one value, got {len(values)} in {text!r}")
    return values[0]


def render(value: Value) -> str:
    """The text that parses back to `value`."""
    if isinstance(value, dict):
        return "{" + " ".join(f"{k}={render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + " ".join(render(v) for v in value) + "]"
    if _PLAIN.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos, text = 0, text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise SyntaxProblem(f"unterminated quote in {text!r}")
        if m.group("punct"):
            tokens.append(("punct", m.group("punct")))
        elif m.group("quoted") is not None:
            tokens.append(("str", re.sub(r"\\(.)", r"\1", m.group("quoted"))))
        else:
            tokens.append(("str", m.group("word")))
        pos = m.end()
    tokens.reverse()  # popped from the end
    return tokens


def _value(tokens: list[tuple[str, str]], depth: int = 0) -> Value:
    kind, text = tokens.pop()
    if kind == "str":
        return text
    if depth == MAX_DEPTH:
        raise SyntaxProblem(f"values nest deeper than {MAX_DEPTH} levels")
    if text == "[":
        items: list[Value] = []
        while tokens and tokens[-1] != ("punct", "]"):
            items.append(_value(tokens, depth + 1))
        _expect(tokens, "]")
        return items
    if text == "{":
        members: dict[str, Value] = {}
        while tokens and tokens[-1] != ("punct", "}"):
            kind, name = tokens.pop()
            if kind != "str":
                raise SyntaxProblem(f"expected a member name in {{...}}, got {name!r}")
            _expect(tokens, "=")
            if name in members:
                raise SyntaxProblem(f"member {name} is given twice")
            members[name] = _value(tokens, depth + 1)
        _expect(tokens, "}")
        return members
    raise SyntaxProblem(f"unexpected {text!r}")


def _expect(tokens: list[tuple[str, str]], punct: str) -> None:
    if not tokens or tokens.pop() != ("punct", punct):
        raise SyntaxProblem(f"missing {punct!r}")
