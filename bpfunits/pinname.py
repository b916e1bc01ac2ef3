"""How a name becomes one bpffs path component: a rule of bpffs that the unit language checks
unit names against and the state package pins by, so it depends on neither."""

from __future__ import annotations

from bpfunits.errors import BpfUnitsError

NAME_MAX = 255  # bytes in one path component, bpffs included


class PinNameError(BpfUnitsError):
    pass


def folder_name(name: str) -> str:
    """A unit name as a bpffs folder name: bpffs refuses '.' in names (EPERM), so '%' and '.'
    are percent-encoded, which keeps the mapping reversible."""
    if not name or "/" in name or "\0" in name:
        raise PinNameError(f"unit name {name!r} cannot be used as a bpffs folder name")
    return name.replace("%", "%25").replace(".", "%2e")
