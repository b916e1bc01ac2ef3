"""Which interfaces a unit's `Interfaces=` selects: exact names, fnmatch globs, `!` exclusions."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable


def select(patterns: Iterable[str], available: Iterable[str]) -> list[str]:
    """Interfaces matching any positive pattern and no `!` pattern, in sorted order. With only
    exclusions (`Interfaces=!eth0`), every available interface but the excluded ones."""
    patterns = list(patterns)
    include = [p for p in patterns if not p.startswith("!")] or ["*"]
    exclude = [p[1:] for p in patterns if p.startswith("!")]
    names = set(available)
    chosen = {n for p in include for n in (fnmatch.filter(names, p) if _glob(p) else [p] if p in names else [])}
    for p in exclude:
        chosen -= set(fnmatch.filter(chosen, p))
    return sorted(chosen)


def _glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def literal_names(patterns: Iterable[str]) -> set[str]:
    """The plain (non-glob, non-excluded) names among patterns: interfaces a unit names outright."""
    return {p for p in patterns if not p.startswith("!") and not _glob(p)}
