"""libbpf on an untrusted ELF object, in a forked worker (load/worker.py): libbpf 1.1 crashes
on some malformed objects, and that must end the worker, not the daemon.

The worker opens the object's bytes and answers with its facts: programs (name, section,
libbpf's type, BTF context type) and maps. Every decision is the parent's, made from those facts
(load.py): which program, typed how, which maps pinned where. The worker then loads, and hands
the program's and maps' fds over with the relocated instructions; the map fds embedded in those
are the worker's numbers, which the parent rewrites into its own.
"""

from __future__ import annotations

import base64
import errno
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bpfunits.load import mappins
from bpfunits.sys import bpf
from bpfunits.sys.bpf import BpfError
from bpfunits.sys.libbpf import BpfObject, LibbpfError, ObjectMap
from bpfunits.load.mapfds import with_map_fds
from bpfunits.load.worker import MAX_FDS, Channel, Message, Worker, WorkerFailed, forked, parsing

# Parsing even a 64 MiB object takes well under a second; a load runs the verifier, which the
# kernel bounds (1M instructions) but which takes seconds on large programs.
OPEN_TIMEOUT = 10.0
LOAD_TIMEOUT = 120.0


class OpenRefused(LibbpfError):
    """libbpf refused to open the object (not ELF, not BPF, broken sections or BTF)."""


@dataclass(frozen=True)
class ProgramFacts:
    name: str
    section: str
    libbpf_type: int  # what libbpf guessed from the section, 0 (UNSPEC) when it could not
    context: str | None  # the BTF type of its first argument: "struct xdp_md", "struct __sk_buff"


@dataclass(frozen=True)
class MapFacts:
    name: str
    shape: tuple[int, int, int, int, int]  # type, key size, value size, max entries, flags
    pin_path: str | None  # where the object asks for it to be pinned (LIBBPF_PIN_BY_NAME)
    value_type: int = 0  # its value's BTF id: for a data section's map, the section's DATASEC


@dataclass(frozen=True)
class ObjectFacts:
    programs: tuple[ProgramFacts, ...]
    maps: tuple[MapFacts, ...]


@dataclass(frozen=True)
class LoadRequest:
    program: str
    prog_type: int
    expected_attach_type: int | None
    pins: dict[str, str | None]  # per map: its pin path; None for no pin; absent: as the object says
    # Global variables set before load: (DATASEC type id of their section, offset, bytes).
    globals: tuple[tuple[int, int, bytes], ...] = ()
    # Per map: the fd of a map to use instead (another unit's); the worker, forked from the
    # process holding it, has it under the same number.
    reuse: dict[str, int] = field(default_factory=dict)
    attach_function: str | None = None  # fentry, fexit: the kernel function it is loaded against


@dataclass
class LoadedObject:
    """One program loaded by the worker, its fds now the caller's to close."""

    prog_fd: int
    insns: bytes  # relocated, with this process's map fds
    maps: dict[str, tuple[int, str | None]]  # name: (fd, pin path)

    def fds(self) -> list[int]:
        return [self.prog_fd, *(fd for fd, _ in self.maps.values())]


class OpenedObject:
    """The parent's handle on a worker holding the opened object."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        try:
            self.facts = _facts(_answer(worker.receive(OPEN_TIMEOUT)))
        except LibbpfError as exc:
            raise OpenRefused(str(exc), exc.errno, exc.output) from exc

    def load(self, request: LoadRequest) -> LoadedObject:
        """Load `request.program`; LibbpfError with libbpf's output if the load fails."""
        self._worker.send(
            {"program": request.program, "prog_type": request.prog_type,
             "expected_attach_type": request.expected_attach_type, "pins": request.pins,
             "globals": [(sec, off, data.hex()) for sec, off, data in request.globals],
             "reuse": request.reuse, "attach_function": request.attach_function}
        )
        message = self._worker.receive(LOAD_TIMEOUT)
        with parsing(message):
            body = _answer(message)
            ours = message.fds_by_number([body["prog_fd"], *(fd for _, fd, _ in body["maps"])])
            loaded = LoadedObject(
                ours[body["prog_fd"]],
                with_map_fds(base64.b64decode(body["insns"]), ours),
                {name: (ours[fd], pin) for name, fd, pin in body["maps"]},
            )
        message.fds = []
        return loaded


@contextmanager
def open_object(data: bytes, path: Path, pin_root: Path | None = None) -> Iterator[OpenedObject]:
    """Open `data` (the object's bytes; `path` names it) in a worker. WorkerFailed if libbpf
    crashes or hangs on it, OpenRefused if it refuses it."""
    with forked(lambda channel: _serve(channel, data, path, pin_root), "libbpf") as worker:
        yield OpenedObject(worker)


def _answer(message: Message) -> dict:
    body = message.body
    if isinstance(body, dict) and "libbpf_error" in body:
        message.close_fds()
        error = body["libbpf_error"]
        raise LibbpfError(str(error["message"]), int(error["errno"]), str(error["output"]))
    if not isinstance(body, dict) or "ok" not in body:
        message.close_fds()
        raise WorkerFailed("the worker sent an answer that does not parse")
    return body["ok"]


def _shape(values: list) -> tuple[int, int, int, int, int]:
    kind, key_size, value_size, max_entries, flags = (int(x) for x in values)
    return kind, key_size, value_size, max_entries, flags


def _facts(body: dict) -> ObjectFacts:
    try:
        return ObjectFacts(
            tuple(ProgramFacts(str(n), str(s), int(t), c if c is None else str(c)) for n, s, t, c in body["programs"]),
            tuple(MapFacts(str(n), _shape(shape), p if p is None else str(p), int(v))
                  for n, shape, p, v in body["maps"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise WorkerFailed(f"the worker sent facts that do not parse ({exc})") from exc


# --- in the worker ---------------------------------------------------------------------------


def _serve(channel: Channel, data: bytes, path: Path, pin_root: Path | None) -> None:
    try:
        obj = BpfObject(data, path, pin_root_path=pin_root)
    except LibbpfError as exc:
        channel.send(_libbpf_error(exc))
        return
    programs = {p.name: p for p in obj.programs()}
    maps = obj.maps()
    channel.send({"ok": {
        "programs": [(p.name, p.section, p.type, obj.context_type(p.name)) for p in programs.values()],
        "maps": [(m.name, m.shape, m.requested_pin_path, m.btf_value_type_id) for m in maps],
    }})
    request = channel.receive()
    if request is None:  # the parent only wanted the facts
        return
    wanted = request.body
    program = programs[wanted["program"]]
    for other in programs.values():
        if other is not program:
            other.set_autoload(False)
    program.set_type(wanted["prog_type"], wanted["expected_attach_type"])
    for m in maps:
        if m.name in wanted["pins"]:
            pin = wanted["pins"][m.name]
            m.set_pin_path(None if pin is None else Path(pin))
        if m.name in wanted["reuse"]:
            m.reuse_fd(wanted["reuse"][m.name])
    try:
        if wanted.get("attach_function"):
            program.set_attach_target(wanted["attach_function"])
        patched = _set_globals(maps, wanted.get("globals", []))
        obj.load()
        _write_mutable_globals(patched)
    except (LibbpfError, BpfError) as exc:
        channel.send(_libbpf_error(exc if isinstance(exc, LibbpfError) else LibbpfError(str(exc), exc.errno or 0)))
        return
    loaded = [(m.name, m.fd, m.pin_path) for m in maps if m.fd >= 0]
    if len(loaded) + 1 > MAX_FDS:
        too_many = f"the object has {len(loaded)} maps; bpfunits takes at most {MAX_FDS - 1}"
        channel.send(_libbpf_error(LibbpfError(too_many, errno.E2BIG)))
        return
    channel.send(
        {"ok": {"prog_fd": program.fd, "insns": base64.b64encode(program.insns()).decode(), "maps": loaded}},
        [program.fd, *(fd for _, fd, _ in loaded)],
    )


def _set_globals(maps: list[ObjectMap], globals_: list) -> list[tuple[ObjectMap, list[tuple[int, bytes]]]]:
    """Write the globals into their sections' initial values; the maps and patches done."""
    by_section: dict[int, list[tuple[int, bytes]]] = {}
    for section, offset, data in globals_:
        by_section.setdefault(int(section), []).append((int(offset), bytes.fromhex(data)))
    patched = []
    for m in maps:
        if m.btf_value_type_id in by_section:
            patches = by_section.pop(m.btf_value_type_id)
            m.patch_initial_value(patches)
            patched.append((m, patches))
    if by_section:
        raise LibbpfError(f"no map holds the data sections (BTF ids {sorted(by_section)}) of the globals set", 2)
    return patched


def _write_mutable_globals(patched: list[tuple[ObjectMap, list[tuple[int, bytes]]]]) -> None:
    """libbpf writes no initial value into a .data or .bss map it reuses from a pin (the unit's state
    across reloads): the declared globals are written into it here (the rest of it is kept)."""
    key = bytes(4)
    for m, patches in patched:
        if not mappins.holds_state(m.name):
            continue  # .rodata: new and frozen at each load, with the initial value set above
        value = bytearray(bpf.map_lookup(m.fd, key, m.shape[2]) or bytes(m.shape[2]))
        for offset, data in patches:
            value[offset: offset + len(data)] = data
        bpf.map_update(m.fd, key, bytes(value))


def _libbpf_error(exc: LibbpfError) -> dict:
    return {"libbpf_error": {"message": str(exc), "errno": exc.errno, "output": exc.output}}
