"""Which interfaces a unit's `Interfaces=` selects: exact names, fnmatch globs, `!` exclusions."""

from __future__ import annotations

from fnmatch import fnmatchcase
from collections.abc import Iterable


def select(patterns: Iterable[str], available: Iterable[str]) -> list[str]:
    """Interfaces matching any positive pattern and no `!` pattern, in sorted order. With only
    exclusions (`Interfaces=!eth0`), every available interface but the excluded ones."""
    patterns = list(patterns)
    include = [p for p in patterns if not p.startswith("!")] or ["*"]
    exclude = [p[1:] for p in patterns if p.startswith("!")]
    return sorted(
        name
        for name in set(available)
        if any(fnmatchcase(name, p) for p in include) and not any(fnmatchcase(name, p) for p in exclude)
    )


def literal_names(patterns: Iterable[str]) -> set[str]:
    """The plain (non-glob, non-excluded) names among patterns: interfaces a unit names outright."""
    return {p for p in patterns if not p.startswith("!") and not any(c in p for c in "*?[")}
