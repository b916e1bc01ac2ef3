"""Loading a `Source=` unit's program: C in bcc's dialect, compiled by bcc at load time.

The result has the shape of an ELF load (`LoadedProgram`): bcc creates the maps before it
compiles, so the instructions it emits already hold the map fds (ld_imm64 BPF_PSEUDO_MAP_FD).
Those stay valid until close(), which releases the bcc module.
"""

from __future__ import annotations

import ctypes
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bcc import BPF, libbcc

from bpfunits.hooks import Hook
from bpfunits.kernel import bpf, mappins
from bpfunits.kernel.bpffs import folder_name
from bpfunits.kernel.load import (
    LoadedProgram,
    LoadError,
    ProgramNotFound,
    ProgramRejected,
    map_ref,
    read_object,
)
from bpfunits.kernel.mapfds import with_map_fds
from bpfunits.untrusted import FilePolicy

# Our own handle on libbcc, so declaring argument types here does not touch bcc's.
_lib = ctypes.CDLL(libbcc.lib._name, use_errno=True)
_lib.bpf_num_tables.restype = ctypes.c_size_t
_lib.bpf_num_tables.argtypes = [ctypes.c_void_p]
_lib.bpf_table_name.restype = ctypes.c_char_p
_lib.bpf_table_name.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_lib.bpf_table_fd.restype = ctypes.c_int
_lib.bpf_table_fd.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_lib.bpf_num_functions.restype = ctypes.c_size_t
_lib.bpf_num_functions.argtypes = [ctypes.c_void_p]
_lib.bpf_function_name.restype = ctypes.c_char_p
_lib.bpf_function_name.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_lib.bpf_module_license.restype = ctypes.c_char_p
_lib.bpf_module_license.argtypes = [ctypes.c_void_p]


@contextmanager
def _stderr_captured() -> Iterator[list[str]]:
    """Collect what is written to fd 2 in the block: clang inside bcc prints its errors there."""
    out: list[str] = []
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode(errors="replace"))


def _functions(module: int) -> list[str]:
    return [_lib.bpf_function_name(module, i).decode() for i in range(_lib.bpf_num_functions(module))]


def _tables(module: int) -> list[str]:
    return [_lib.bpf_table_name(module, i).decode() for i in range(_lib.bpf_num_tables(module))]


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
) -> LoadedProgram:
    """Compile `source` with bcc (each define as -DNAME=VALUE) and load function `name` (or
    the source's only function) as an XDP or SCHED_CLS program for `hook`. With `pin_root`,
    the maps persist there: a compatible map pinned by an earlier load takes the place of the
    one bcc just made (its fd rewritten into the instructions), any other is pinned by
    mappins.commit. The source
    is read once, under `policy`, and bcc compiles those bytes: what was hashed is what loads."""
    source, hook = Path(source), Hook(hook)
    label = label or str(source)
    source_file = read_object(source, label, sha256, policy)
    # Quoted #includes are still found next to the source, as when bcc read the file itself.
    cflags = [f"-D{key}={value}" for key, value in defines] + [f"-I{source.parent}"]
    with _stderr_captured() as compiler_output:
        try:
            module = BPF(text=source_file.data, cflags=cflags)
        except Exception as e:  # bcc raises bare Exception for compile failures
            failure = e
        else:
            failure = None
    if failure is not None:
        output = "".join(compiler_output).strip()
        raise LoadError(f"{label}: bcc cannot compile {source}: {failure}\n{output}".rstrip())
    adopted: dict[str, int] = {}  # fds of pinned maps standing in for bcc's, ours to close

    def release() -> None:
        for map_fd in adopted.values():
            os.close(map_fd)
        module.cleanup()

    try:
        functions = _functions(module.module)
        chosen = name if name is not None else (functions[0] if len(functions) == 1 else None)
        if chosen not in functions:
            wanted = (
                f"no function {name!r}"
                if name is not None
                else f"{len(functions)} functions, so Name= must say which"
            )
            raise ProgramNotFound(
                f"{label}: {source} has {wanted}; its functions: {', '.join(functions) or 'none'}",
                tuple(functions),
            )
        prog_type = bpf.ProgType.SCHED_CLS if hook.is_tc else bpf.ProgType.XDP
        insns = module.dump_func(chosen.encode())
        tables = {t: _lib.bpf_table_fd(module.module, t.encode()) for t in _tables(module.module)}
        if pin_root is None:
            try:
                with _stderr_captured():  # bcc prints a failed load's verifier log there
                    fd = module.load_func(chosen.encode(), BPF.SCHED_CLS if hook.is_tc else BPF.XDP).fd
            except Exception:
                # bcc raises a bare Exception; loading the same instructions ourselves gets the
                # verifier log for the error.
                fd = _reload_for_log(insns, prog_type, module, chosen, source, label)
            pins: dict[str, str] = {}
        else:
            pins = _persist_maps(tables, pin_root, adopted)
            insns = with_map_fds(insns, {tables[n]: fd for n, fd in adopted.items()})
            fd = _load(insns, prog_type, module, chosen, source, label)
        info = bpf.prog_info(fd)
        maps = {t: map_ref(t, adopted.get(t, tables[t]), pins.get(t)) for t in tables}
    except BaseException:
        release()
        raise
    return LoadedProgram(
        fd=fd,
        name=chosen,
        hook=hook,
        prog_type=info.type,
        id=info.id,
        tag=info.tag,
        insns=insns,
        maps=maps,
        sha256=source_file.sha256,
        _release=release,
    )


def _load(insns: bytes, prog_type: int, module: BPF, name: str, source: Path, label: str) -> int:
    license = _lib.bpf_module_license(module.module).decode()
    try:
        return bpf.prog_load(prog_type, insns, license=license, name=name)
    except bpf.VerifierError as e:
        raise ProgramRejected(label, name, source, e.errno, e.log) from None
    except bpf.BpfError as e:
        raise LoadError(f"{label}: loading {name!r} from {source} failed: {e}") from None


def _reload_for_log(insns: bytes, prog_type: int, module: BPF, name: str, source: Path, label: str) -> int:
    # Loaded the second time after all? Close it: the first failure stands.
    os.close(_load(insns, prog_type, module, name, source, label))
    raise LoadError(f"{label}: bcc could not load {name!r} from {source}")


def _persist_maps(tables: dict[str, int], pin_root: Path, adopted: dict[str, int]) -> dict[str, str]:
    """Adopt (into `adopted`) each compatible map pinned under `pin_root` by an earlier load; any
    other map stays bcc's, unpinned until mappins.commit. Returns the pins reused."""
    pins = {}
    for name, fd in tables.items():
        path = pin_root / folder_name(name)
        if mappins.reusable(path, bpf.map_info(fd).shape):
            adopted[name] = bpf.obj_get(str(path))
            pins[name] = str(path)
    return pins
