"""Finding units on the search path, with systemd's precedence, masking and drop-ins.

Folders are given highest first. A unit in a higher folder replaces a same-named one below it; a unit file
that is a symlink to /dev/null (or empty) masks the name. Drop-ins `NAME.d/*.conf` from every folder apply
in lexical order of file name, a same-named drop-in in a higher folder replacing a lower one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from bpfunits.pinname import NAME_MAX, folder_name
from bpfunits.untrusted import FilePolicy, UntrustedFileError, check_folders, read_untrusted
from bpfunits.units.assignment import Assignment
from bpfunits.units.build import build_unit
from bpfunits.units.diagnostics import Diagnostic, Severity, error, warning
from bpfunits.units.ini import read_ini
from bpfunits.units.model import Location, Unit
from bpfunits.units.yamlform import read_yaml

DEFAULT_PATH: tuple[Path, ...] = (Path("/etc/bpfunits.d"), Path("/run/bpfunits.d"), Path("/usr/lib/bpfunits.d"))
READERS = {".unit": read_ini, ".yaml": read_yaml}
DROPIN_SUFFIX = ".conf"
UNIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")


@dataclass
class LoadResult:
    """The valid units, and every error and warning met on the way. One broken unit never hides the others."""

    units: dict[str, Unit] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    masked: dict[str, Path] = field(default_factory=dict)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity is Severity.ERROR]


@dataclass
class _Found:
    main: Path | None = None
    masked_by: Path | None = None
    dropins: dict[str, Path] = field(default_factory=dict)  # drop-in file name → highest-precedence path


def load_units(
    folders: tuple[Path, ...] = DEFAULT_PATH, *, required: bool = False, policy: FilePolicy = FilePolicy()
) -> LoadResult:
    """Load every unit on the path. `required`: a missing folder is an error (folders named by the user).
    `policy`: what a unit file or drop-in must be to be read."""
    result = LoadResult()
    found: dict[str, _Found] = {}
    for folder in folders:
        if not folder.is_dir():
            if required:
                result.diagnostics.append(error("units folder does not exist", Location(folder)))
            continue
        _scan(folder, found, result.diagnostics, policy)

    for name in sorted(found):
        entry = found[name]
        if entry.masked_by is not None:
            result.masked[name] = entry.masked_by
            continue
        dropins = tuple(entry.dropins[f] for f in sorted(entry.dropins))
        if entry.main is None:
            for path in dropins:
                result.diagnostics.append(
                    warning(f"drop-in for unit {name}, which exists nowhere on the path", Location(path), name)
                )
            continue
        if name.endswith("@"):
            continue  # a template: its instances (NAME@INSTANCE, links to it) are the units
        unit = _load_one(name, entry.main, dropins, result.diagnostics, policy)
        if unit is not None:
            result.units[name] = unit
    result.diagnostics.sort(key=lambda d: (str(d.location.path), d.location.line or 0))
    return result


def _scan(folder: Path, found: dict[str, _Found], problems: list[Diagnostic], policy: FilePolicy) -> None:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        problems.append(error(f"cannot list folder: {exc.strerror}", Location(folder)))
        return
    seen_here: dict[str, Path] = {}
    for entry in entries:
        if entry.name.startswith("."):
            continue  # editor temp files, Kubernetes ..data links
        path = Path(entry.path)
        stem, suffix = os.path.splitext(entry.name)
        if suffix == ".d" and path.is_dir():
            _scan_dropins(stem, path, found, problems)
            continue
        if suffix not in READERS:
            continue
        if not UNIT_NAME.match(stem):
            problems.append(error("invalid unit name: use letters, digits and _ . @ -", Location(path)))
            continue
        if (size := len(folder_name(stem))) > NAME_MAX:
            problems.append(error(f"unit name too long: its pin folder name would be {size} bytes, "
                                  f"bpffs allows {NAME_MAX}",
                                  Location(path), stem))
            continue
        if stem in seen_here:
            twice = f"unit {stem} is defined twice in one folder (also {seen_here[stem].name})"
            problems.append(error(twice, Location(path), stem))
            continue
        seen_here[stem] = path
        entry_found = found.setdefault(stem, _Found())
        if entry_found.main is not None or entry_found.masked_by is not None:
            continue  # a higher folder already decided this name
        if _is_mask(path):
            if _masks(path, stem, problems, policy):
                entry_found.masked_by = path
        else:
            entry_found.main = path


def _scan_dropins(name: str, folder: Path, found: dict[str, _Found], problems: list[Diagnostic]) -> None:
    try:
        files = sorted(
            e.name for e in os.scandir(folder) if e.name.endswith(DROPIN_SUFFIX) and not e.name.startswith(".")
        )
    except OSError as exc:
        problems.append(error(f"cannot list drop-in folder: {exc.strerror}", Location(folder), name))
        return
    dropins = found.setdefault(name, _Found()).dropins
    for file_name in files:
        dropins.setdefault(file_name, folder / file_name)


def _is_mask(path: Path) -> bool:
    try:
        return os.path.realpath(path) == os.devnull or (path.is_file() and path.stat().st_size == 0)
    except OSError:
        return False  # a dangling link: reading it reports the problem


def _masks(path: Path, name: str, problems: list[Diagnostic], policy: FilePolicy) -> bool:
    """Whether a mask file counts: with strict permissions, only where nobody else may write."""
    try:
        if policy.strict_permissions:
            check_folders(path)
        return True
    except UntrustedFileError as exc:
        problems.append(error(f"mask refused: {exc.problem}", Location(path), name))
        return False


def _load_one(
    name: str, main: Path, dropins: tuple[Path, ...], problems: list[Diagnostic], policy: FilePolicy
) -> Unit | None:
    assignments: list[Assignment] = []
    failed = False
    for path, reader in [(main, READERS[main.suffix])] + [(d, read_ini) for d in dropins]:
        text = _read_text(path, name, problems, policy)
        if text is None:
            failed = True
            continue
        got, bad = reader(text, path, name)
        assignments += got
        problems += bad
        failed = failed or bool(bad)
    # Validate even what read badly, so that one pass reports every problem of the file.
    built = build_unit(name, main, assignments, dropins, read_cleanly=not failed)
    if isinstance(built, list):
        problems += built
        return None
    return None if failed else built


def _read_text(path: Path, unit: str, problems: list[Diagnostic], policy: FilePolicy) -> str | None:
    try:
        return read_untrusted(path, policy.max_unit_size, strict=policy.strict_permissions).decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(error(f"not UTF-8 text (byte {exc.start})", Location(path), unit))
    except UntrustedFileError as exc:
        problems.append(error(exc.problem, Location(path), unit))
    return None
