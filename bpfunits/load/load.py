"""Loading one unit's program from an ELF object with libbpf.

A load picks the unit's program, types it from the hook whatever its section is called, loads
only that program of the object, and reuses maps the unit pinned before (libbpf
LIBBPF_PIN_BY_NAME under the unit's own bpffs folder), so a reload keeps state. The result is a
LoadedProgram (program.py).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bpfunits.btf.kernel import kernel_func_id
from bpfunits.btf.types import BtfError
from bpfunits.errors import BpfUnitsError
from bpfunits.hooks import Hook
from bpfunits.hooks.events import EventHook
from bpfunits.linker.progtype import expected_attach_type_of, prog_type_of
from bpfunits.load import mappins
from bpfunits.sys import bpf
from bpfunits.state.bpffs import remove_tree
from bpfunits.sys.libbpf import LibbpfError, iter_log_sections
from bpfunits.sys.libbpf import strerror as libbpf_strerror
from bpfunits.load.objworker import (
    LoadRequest,
    MapFacts,
    ObjectFacts,
    OpenRefused,
    ProgramFacts,
    open_object,
)
from bpfunits.load.program import LoadedProgram, loaded_program
from bpfunits.load.progkind import misfit
from bpfunits.load.worker import WorkerFailed
from bpfunits.untrusted import FileMissing, FilePolicy, UntrustedFileError, read_untrusted


class LoadError(BpfUnitsError):
    """A unit's program could not be loaded; the message names the unit and file."""


class ObjectNotFound(LoadError):
    pass


class ChecksumMismatch(LoadError):
    def __init__(self, message: str, expected: str, actual: str) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class ProgramNotFound(LoadError):
    def __init__(self, message: str, available: tuple[str, ...]) -> None:
        super().__init__(message)
        self.available = available


class WrongProgramType(LoadError):
    pass


class ObjectMalformed(LoadError):
    """libbpf refused the object, or crashed or hung on it (in its worker)."""


class ProgramRejected(LoadError, bpf.VerifierError):
    """The verifier refused the program: `.log` is its full log, str() ends with its last lines."""

    def __init__(self, label: str, program: str, path: Path, err: int, log: str) -> None:
        bpf.VerifierError.__init__(
            self, "BPF_PROG_LOAD", err, log, f"{label}: program {program!r} from {path}"
        )


class SharedMapMismatch(LoadError):
    """A map this unit takes from another (MapsFrom=) is declared with another shape here."""


@dataclass(frozen=True)
class SharedMap:
    """A map of another unit's program that this unit's program uses instead of its own."""

    owner: str  # the unit whose map it is
    fd: int
    id: int
    shape: tuple[int, int, int, int, int]


_SHAPE_FIELDS = ("type", "key size", "value size", "max entries", "flags")


def _check_shared(maps: tuple[MapFacts, ...], shared: dict[str, SharedMap], label: str,
                  sections: set[int]) -> dict[str, int]:
    """The fds of the shared maps this object declares, once each has the shape it declares and
    none holds a global this load sets (`sections`: their DATASEC ids), which the owner's would
    not take."""
    reuse = {}
    for m in maps:
        if m.name not in shared:
            continue
        theirs = shared[m.name]
        if m.value_type in sections:
            raise LoadError(f"{label}: Global= sets a variable of map {m.name}, which it takes from unit "
                            f"{theirs.owner} (MapsFrom=): declare it in unit {theirs.owner}")
        if m.shape != theirs.shape:
            diff = ", ".join(f"{f} {mine} here, {other} in unit {theirs.owner}"
                             for f, mine, other in zip(_SHAPE_FIELDS, m.shape, theirs.shape, strict=True)
                             if mine != other)
            raise SharedMapMismatch(f"{label}: map {m.name} taken from unit {theirs.owner} (MapsFrom=) has another "
                                    f"shape: {diff}")
        reuse[m.name] = theirs.fd
    return reuse


@dataclass(frozen=True)
class ObjectFile:
    """An object's (or source's) bytes as read once, and their SHA256: what was hashed is what
    loads, whatever happens to the file meanwhile."""

    data: bytes
    sha256: str


def read_object(path: Path, label: str, sha256: str | None, policy: FilePolicy) -> ObjectFile:
    """The file at `path` and its SHA256, checked against `sha256` when given."""
    try:
        data = read_untrusted(path, policy.max_object_size, strict=policy.strict_permissions)
    except FileMissing:
        raise ObjectNotFound(f"{label}: BPF file {path} does not exist") from None
    except UntrustedFileError as e:
        raise LoadError(f"{label}: BPF file {e}") from e
    actual = hashlib.sha256(data).hexdigest()
    if sha256 is not None and sha256.lower() != actual:
        raise ChecksumMismatch(
            f"{label}: SHA256 of {path} does not match: expected {sha256.lower()}, file has {actual}",
            sha256.lower(),
            actual,
        )
    return ObjectFile(data, actual)


def select_program(
    programs: tuple[ProgramFacts, ...], name: str | None, hook: Hook | EventHook, path: Path, label: str
) -> ProgramFacts:
    """Program `name`, or the object's one program for `hook`; refused if it cannot run there."""
    listing = ", ".join(f"{p.name} (SEC {p.section!r})" for p in programs) or "none"
    if name is not None:
        chosen = [p for p in programs if p.name == name]
        if not chosen:
            raise ProgramNotFound(
                f"{label}: {path} has no program {name!r}; its programs: {listing}",
                tuple(p.name for p in programs),
            )
    else:
        chosen = [p for p in programs if misfit(p, hook) is None]
        if len(chosen) != 1 and len(programs) == 1:
            chosen = list(programs)  # the one program, whatever it is; the check below speaks
        if len(chosen) != 1:
            raise ProgramNotFound(
                f"{label}: {path} holds {len(chosen)} programs for the {hook.value} hook, "
                f"so Name= must say which; its programs: {listing}",
                tuple(p.name for p in programs),
            )
    program = chosen[0]
    if reason := misfit(program, hook):
        raise WrongProgramType(
            f"{label}: program {program.name!r} in {path} {reason}, which cannot run on the {hook.value} hook"
        )
    return program


def _persistent_pins(maps: tuple[MapFacts, ...], pin_root: Path) -> dict[str, str | None]:
    """Per map that holds state: its pin, when a map of the same shape is pinned there for this
    load to reuse, else None: a new map, left unpinned (mappins.commit pins it once a chain using
    it runs, so a plan, or a load that fails, changes no pin). Read-only data comes from the
    object itself."""
    pins: dict[str, str | None] = {}
    for m in maps:
        if not mappins.holds_state(m.name):
            continue
        reused = mappins.reusable_pin(pin_root, m.name, m.shape, m.pin_path)
        pins[m.name] = str(reused) if reused is not None else None
    return pins


def _pins_under(folder: Path) -> set[Path]:
    return {Path(d) / f for d, _, files in os.walk(folder) for f in files}


def open_object_facts(path: Path, data: bytes, label: str) -> ObjectFacts:
    """What the object's bytes hold, read by libbpf in a worker: no kernel, no root."""
    with _malformed_as_load_error(path, label), open_object(data, path) as opened:
        return opened.facts


@contextmanager
def _malformed_as_load_error(path: Path, label: str) -> Iterator[None]:
    try:
        yield
    except WorkerFailed as e:
        raise ObjectMalformed(f"{label}: object {path} is malformed ({e.detail})") from e
    except OpenRefused as e:
        output = e.output.strip()
        reason = f"libbpf: {libbpf_strerror(e.errno)}"
        raise ObjectMalformed(f"{label}: object {path} is malformed ({reason})\n{output}".rstrip()) from e


def _load_in_worker(
    data: ObjectFile, path: Path, pin_root: Path | None, name: str | None, hook: Hook | EventHook, persist_maps: bool,
    label: str,
    shared: dict[str, SharedMap],
    globals_: tuple[tuple[int, int, bytes], ...] = (),
) -> LoadedProgram:
    with _malformed_as_load_error(path, label), open_object(data.data, path, pin_root) as opened:
        program = select_program(opened.facts.programs, name, hook, path, label)
        if pin_root is None:  # nothing pinned anywhere, even what the object asks to pin
            pins: dict[str, str | None] = {m.name: None for m in opened.facts.maps}
        else:
            pins = _persistent_pins(opened.facts.maps, pin_root) if persist_maps else {}
        reuse = _check_shared(opened.facts.maps, shared, label, {sec for sec, _, _ in globals_})
        pins.update({m: None for m in reuse})  # neither pinned nor reused from this unit's folder
        # On tc, the attach type the object's section gives (none for SEC("tc")).
        attach = expected_attach_type_of(hook) or None
        function = hook.kernel_function if isinstance(hook, EventHook) else None
        try:
            loaded = opened.load(LoadRequest(program.name, prog_type_of(hook), attach, pins, globals_, reuse,
                                             function))
        except LibbpfError as e:
            log = "".join(iter_log_sections(e.output, "-- BEGIN PROG LOAD LOG --", "-- END PROG LOAD LOG --"))
            if log:
                raise ProgramRejected(label, program.name, path, e.errno, log) from e
            raise LoadError(f"{label}: loading {path} failed: {e}\n{e.output.strip()}".rstrip()) from e
        frags = hook is Hook.XDP and is_frags_section(program.section)
        return loaded_program(loaded.prog_fd, program.name, hook, loaded.insns, loaded.maps, data.sha256, loaded.fds(),
                              frags=frags)


def _check_kernel_function(hook: EventHook, label: str) -> None:
    """fentry, fexit: the function must be in vmlinux BTF. libbpf looks its id up again as it
    loads, in vmlinux first; but it would also take a module's function, and say less."""
    if hook.kernel_function is not None:
        try:
            kernel_func_id(hook.kernel_function)
        except BtfError as e:
            raise LoadError(f"{label}: {hook.value}: {e}") from e


def is_frags_section(section: str) -> bool:
    """libbpf loads the programs of these sections with BPF_F_XDP_HAS_FRAGS."""
    return section == "xdp.frags" or section.startswith("xdp.frags/")


def load_object_program(
    path: Path,
    hook: Hook | EventHook,
    pin_root: Path | None,
    *,
    name: str | None = None,
    sha256: str | None = None,
    label: str | None = None,
    persist_maps: bool = False,
    policy: FilePolicy = FilePolicy(),
    data: ObjectFile | None = None,
    shared: dict[str, SharedMap] | None = None,
    globals_: tuple[tuple[int, int, bytes], ...] = (),
) -> LoadedProgram:
    """Load program `name` (or the object's one program for `hook`) from the ELF object at
    `path`, with maps pinned by name under `pin_root` (a bpffs folder, created if missing, and
    removed again if the load leaves it empty). With `persist_maps`, every map that holds state
    is pinned there too, so the next load of the same unit reuses it. A failed load leaves no
    pin it created. Without `pin_root`, nothing is pinned (a trial load). libbpf runs in a
    worker process: an object that crashes it is ObjectMalformed. `policy`: what the object file
    must be to be read; `data`: its bytes, already read under it; `shared`: maps of other units
    to use, by name, instead of the object's own (refused if the object declares another shape);
    `globals_`: global variables to set before load, as (DATASEC BTF id of their section, offset,
    bytes), refused in a section whose map is shared."""
    path, hook = Path(path), hook if isinstance(hook, EventHook) else Hook(hook)
    label = label or str(path)
    if pin_root is not None and os.path.ismount(pin_root):
        # libbpf would pin maps by name straight into a shared bpffs root.
        raise LoadError(f"{label}: refusing to pin maps into the bpffs mount point {pin_root}")
    if isinstance(hook, EventHook):
        _check_kernel_function(hook, label)
    object_file = data or read_object(path, label, sha256, policy)
    if pin_root is None:
        return _load_in_worker(object_file, path, None, name, hook, False, label, shared or {}, globals_)
    pin_root = Path(pin_root)
    created_root = not pin_root.exists()
    if not persist_maps:  # libbpf pins the maps an object declares LIBBPF_PIN_BY_NAME there
        pin_root.mkdir(parents=True, exist_ok=True)
    pins_before = _pins_under(pin_root)
    try:
        result = _load_in_worker(object_file, path, pin_root, name, hook, persist_maps, label, shared or {},
                                 globals_)
    except BaseException:
        for pin in _pins_under(pin_root) - pins_before:
            pin.unlink(missing_ok=True)
        if created_root and pin_root.is_dir() and not any(pin_root.iterdir()):
            remove_tree(pin_root)
        raise
    if created_root and pin_root.is_dir() and not any(pin_root.iterdir()):
        pin_root.rmdir()
    return result

