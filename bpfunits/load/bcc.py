"""Loading a `Source=` unit's program: C in bcc's dialect, compiled by bcc at load time.

The result is a LoadedProgram (program.py), as of an ELF load: bcc creates the maps as it
compiles (in a worker, bcccompile.py), so the instructions it emits already hold the map fds
(ld_imm64 BPF_PSEUDO_MAP_FD). close() closes the program and every map.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from bpfunits.hooks import Hook
from bpfunits.linker.progtype import prog_type_of
from bpfunits.load import mappins
from bpfunits.sys import bpf
from bpfunits.load.bcccompile import CompileFailed, compile_source
from bpfunits.load.load import LoadError, ObjectFile, ProgramNotFound, ProgramRejected, read_object
from bpfunits.load.mapfds import with_map_fds
from bpfunits.load.program import LoadedProgram, close_all, loaded_program
from bpfunits.load.worker import WorkerFailed
from bpfunits.untrusted import FilePolicy


def load_source_program(
    source: Path,
    hook: Hook,
    *,
    name: str | None = None,
    defines: tuple[tuple[str, str], ...] = (),
    sha256: str | None = None,
    label: str | None = None,
    pin_root: Path | None = None,
    policy: FilePolicy = FilePolicy(),
    data: ObjectFile | None = None,
) -> LoadedProgram:
    """Compile `source` with bcc (each define as -DNAME=VALUE) and load function `name` (or
    the source's only function) as an XDP or SCHED_CLS program for `hook`. With `pin_root`,
    the maps persist there: a compatible map pinned by an earlier load takes the place of the
    one bcc just made (its fd rewritten into the instructions), any other is pinned by
    mappins.commit. The source is read once, under `policy` (or given as `data`, read so), and
    bcc compiles those bytes: what was hashed is what loads."""
    source, hook = Path(source), Hook(hook)
    label = label or str(source)
    source_file = data or read_object(source, label, sha256, policy)
    # Quoted #includes are still found next to the source, as when bcc read the file itself.
    cflags = [f"-D{key}={value}" for key, value in defines] + [f"-I{source.parent}"]
    try:
        compiled = compile_source(source_file.data, cflags, name)
    except CompileFailed as e:
        raise LoadError(f"{label}: bcc cannot compile {source}: {e}\n{e.output.strip()}".rstrip()) from e
    except WorkerFailed as e:
        raise LoadError(f"{label}: bcc cannot compile {source}: {e.detail}") from e
    owned = list(compiled.tables.values())  # every fd the result holds
    try:
        if compiled.function is None:
            wanted = (
                f"no function {name!r}"
                if name is not None
                else f"{len(compiled.functions)} functions, so Name= must say which"
            )
            raise ProgramNotFound(
                f"{label}: {source} has {wanted}; its functions: {', '.join(compiled.functions) or 'none'}",
                compiled.functions,
            )
        insns, tables, pins = compiled.insns, dict(compiled.tables), {}
        if pin_root is not None:
            pins = _adopt_pinned_maps(tables, pin_root, owned)
            insns = with_map_fds(insns, {compiled.tables[n]: tables[n] for n in pins})
        fd = _load(insns, prog_type_of(hook), compiled.license, compiled.function, source, label)
        owned.append(fd)
    except BaseException:
        close_all(owned)
        raise
    maps = {table: (map_fd, pins.get(table)) for table, map_fd in tables.items()}
    identity = source_identity(source_file.sha256, defines)
    return loaded_program(fd, compiled.function, hook, insns, maps, identity, owned)


def source_identity(sha256: str, defines: tuple[tuple[str, str], ...]) -> str:
    """What a compiled program is made of: its source, and the defines it was compiled with
    (a Define= may change only a map's size, which neither the source's digest nor the
    program's tag would show). The source's own digest when there are none."""
    if not defines:
        return sha256
    text = sha256 + "".join(f"\0{key}={value}" for key, value in defines)
    return hashlib.sha256(text.encode()).hexdigest()


def _load(insns: bytes, prog_type: int, license: str, name: str, source: Path, label: str) -> int:
    try:
        return bpf.prog_load(prog_type, insns, license=license, name=name)
    except bpf.VerifierError as e:
        raise ProgramRejected(label, name, source, e.errno or 0, e.log) from e
    except bpf.BpfError as e:
        raise LoadError(f"{label}: loading {name!r} from {source} failed: {e}") from e


def _adopt_pinned_maps(tables: dict[str, int], pin_root: Path, owned: list[int]) -> dict[str, str]:
    """Put in `tables` each compatible map pinned under `pin_root` by an earlier load in place
    of bcc's (its fd added to `owned`); any other map stays bcc's, unpinned until
    mappins.commit. Returns the pins reused."""
    pins = {}
    for name, fd in list(tables.items()):
        path = mappins.reusable_pin(pin_root, name, bpf.map_info(fd).shape)
        if path is not None:
            tables[name] = bpf.obj_get(str(path))
            owned.append(tables[name])
            pins[name] = str(path)
    return pins
