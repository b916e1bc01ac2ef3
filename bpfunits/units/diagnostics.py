"""Errors and warnings about unit files, each pointing at a file and line."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from bpfunits.units.model import Location


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Diagnostic:
    severity: Severity
    message: str
    location: Location
    unit: str | None = None
    key: str | None = None

    def __str__(self) -> str:
        # Messages name their key themselves; `key` is for machines (JSON).
        unit = f"unit {self.unit}: " if self.unit else ""
        return f"{self.location}: {self.severity.value}: {unit}{self.message}"

    def to_json(self) -> dict:
        return {
            "severity": self.severity.value,
            "file": str(self.location.path),
            "line": self.location.line,
            "unit": self.unit,
            "key": self.key,
            "message": self.message,
        }


def error(message: str, location: Location, unit: str | None = None, key: str | None = None) -> Diagnostic:
    return Diagnostic(Severity.ERROR, message, location, unit, key)


def warning(message: str, location: Location, unit: str | None = None, key: str | None = None) -> Diagnostic:
    return Diagnostic(Severity.WARNING, message, location, unit, key)
