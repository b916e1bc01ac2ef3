"""One `Key=value` as read from a unit file or drop-in, before assignments are folded into a unit."""

from __future__ import annotations

from dataclasses import dataclass

from bpfunits.units.keys import Key
from bpfunits.units.model import Location


@dataclass(frozen=True)
class Assignment:
    key: Key
    # Scalar keys carry a string; list keys a tuple, where an empty tuple resets the list.
    value: str | tuple[str, ...]
    location: Location
