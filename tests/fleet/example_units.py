"""units.example.d, the example chain that the fleet packaging ships in its own forms."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bpfunits.units.model import Unit
from bpfunits.units.search import load_units

EXAMPLES = Path(__file__).resolve().parents[2] / "units.example.d"


def comparable(folder: Path) -> dict[str, Unit]:
    """The units of `folder`, with what legitimately differs between copies made the same:
    the unit file's path and the folder holding the object."""
    loaded = load_units((folder,), required=True)
    assert not loaded.diagnostics, loaded.diagnostics
    return {name: replace(u, path=Path(u.path.stem),
                          program=replace(u.program, object=u.program.object and Path(u.program.object.name)))
            for name, u in loaded.units.items()}
