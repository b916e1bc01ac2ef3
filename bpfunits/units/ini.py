"""systemd-style INI unit files and drop-ins: `[Section]` headers and `Key=value` lines.

Follows systemd's syntax: `#` or `;` start a comment line, a trailing backslash continues a value on the
next line, a repeated list key appends and an empty assignment resets. As in the documented examples, a `#`
after whitespace also starts a comment, so values cannot contain ` #`.
"""

from __future__ import annotations

import re
from pathlib import Path

from bpfunits.units.assignment import Assignment
from bpfunits.units.diagnostics import Diagnostic, error
from bpfunits.units.keys import BY_INI, SECTIONS, suggest, unknown_ini_key
from bpfunits.units.model import Location

_SECTION = re.compile(r"^\[([^\]]*)\]$")
_TRAILING_COMMENT = re.compile(r"\s+[#;].*$")


def read_ini(text: str, path: Path, unit: str | None = None) -> tuple[list[Assignment], list[Diagnostic]]:
    assignments: list[Assignment] = []
    problems: list[Diagnostic] = []
    section: str | None = None
    section_known = False

    for lineno, line in _logical_lines(text):
        where = Location(path, lineno)
        if not line or line[0] in "#;":
            continue
        header = _SECTION.match(line)
        if header:
            section = header.group(1).strip()
            section_known = section in SECTIONS
            if not section_known:
                problems.append(error(f"unknown section [{section}]{suggest(section, list(SECTIONS))}", where, unit))
            continue
        if "=" not in line:
            problems.append(error(f"expected 'Key=value' or '[Section]', got {line!r}", where, unit))
            continue
        name, _, value = line.partition("=")
        name = name.strip()
        value = _TRAILING_COMMENT.sub("", value).strip()
        if section is None:
            problems.append(error(f"{name}= appears before any [Section] header", where, unit, f"{name}="))
            continue
        if not section_known:
            continue  # the section itself was reported once
        key = BY_INI.get((section, name))
        if key is None:
            problems.append(error(unknown_ini_key(section, name), where, unit, f"{name}="))
            continue
        items = ((" ".join(value.split()),) if value else ()) if key.whole_items else tuple(value.split())
        assignments.append(Assignment(key, items if key.is_list else value, where))
    return assignments, problems


def _logical_lines(text: str):
    """(first line number, stripped line), joining backslash continuations with a space."""
    pending: list[str] = []
    start = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending:
            start = lineno
            if stripped[:1] in ("#", ";"):
                yield lineno, stripped
                continue
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].rstrip())
            continue
        pending.append(stripped)
        yield start, " ".join(pending).strip()
        pending = []
    if pending:
        yield start, " ".join(pending).strip()
