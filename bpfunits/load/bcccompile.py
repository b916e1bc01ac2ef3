"""bcc compiling a `Source=` unit, in a forked worker (load/worker.py): clang prints its
errors to fd 2, which can only be captured by redirecting it, and redirecting the daemon's own
fd 2 would swallow what its other threads log meanwhile; in the worker, fd 2 is the worker's.
A crash or hang of clang ends the worker only.

The worker compiles, which creates the source's maps, and hands their fds over with the
chosen function's instructions; the map fds in those are the worker's numbers, which the
parent rewrites into its own (as objworker.py does for libbpf).
"""

from __future__ import annotations

import base64
import ctypes
import os
import tempfile
from dataclasses import dataclass

from bcc import BPF, libbcc

from bpfunits.errors import BpfUnitsError
from bpfunits.load.mapfds import with_map_fds
from bpfunits.load.worker import MAX_FDS, Channel, forked, parsing

# Compiling runs clang and LLVM: seconds for a large source, bounded here all the same.
COMPILE_TIMEOUT = 120.0


class CompileFailed(BpfUnitsError):
    """bcc refused the source; `output` is what the compiler printed."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


@dataclass
class Compiled:
    """One function of a compiled source; its map fds are now the caller's to close."""

    functions: tuple[str, ...]
    function: str | None  # the chosen one; None when `name` matched none (or was ambiguous)
    insns: bytes  # with this process's map fds
    tables: dict[str, int]  # map name: fd
    license: str


def compile_source(text: bytes, cflags: list[str], name: str | None) -> Compiled:
    """Compile `text` with bcc in a worker and take function `name` (or the only one)."""
    with forked(lambda channel: _serve(channel, text, cflags, name), "bcc") as worker:
        message = worker.receive(COMPILE_TIMEOUT)
    with parsing(message):
        body = message.body
        if "compile_error" in body:
            message.close_fds()
            raise CompileFailed(str(body["compile_error"]), str(body["output"]))
        ok = body["ok"]
        ours = message.fds_by_number([fd for _, fd in ok["tables"]])
        compiled = Compiled(
            tuple(str(f) for f in ok["functions"]),
            None if ok["function"] is None else str(ok["function"]),
            with_map_fds(base64.b64decode(ok["insns"]), ours),
            {str(t): ours[fd] for t, fd in ok["tables"]},
            str(ok["license"]),
        )
    return compiled


# --- in the worker ---------------------------------------------------------------------------


def _serve(channel: Channel, text: bytes, cflags: list[str], name: str | None) -> None:
    with tempfile.TemporaryFile() as output:
        os.dup2(output.fileno(), 2)  # the worker's own fd 2: clang writes its errors there
        try:
            module = BPF(text=text, cflags=cflags)
        except Exception as exc:  # bcc raises bare Exception for compile failures
            output.seek(0)
            channel.send({"compile_error": str(exc), "output": output.read().decode(errors="replace")})
            return
    handle = module.module
    functions = [_lib.bpf_function_name(handle, i).decode() for i in range(_lib.bpf_num_functions(handle))]
    chosen = name if name is not None else (functions[0] if len(functions) == 1 else None)
    if chosen not in functions:
        chosen = None
    tables = [(t, _lib.bpf_table_fd(handle, t.encode()))
              for t in (_lib.bpf_table_name(handle, i).decode() for i in range(_lib.bpf_num_tables(handle)))]
    if len(tables) > MAX_FDS:
        raise BpfUnitsError(f"the source has {len(tables)} maps; bpfunits takes at most {MAX_FDS}")
    insns = module.dump_func(chosen.encode()) if chosen else b""
    channel.send(
        {"ok": {"functions": functions, "function": chosen, "insns": base64.b64encode(insns).decode(),
                "tables": tables, "license": _lib.bpf_module_license(handle).decode()}},
        [fd for _, fd in tables],
    )


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Argument types on our own handle on libbcc, so bcc's own stays as it declared it."""
    for fn, restype, argtypes in (
        ("bpf_num_tables", ctypes.c_size_t, [ctypes.c_void_p]),
        ("bpf_table_name", ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_size_t]),
        ("bpf_table_fd", ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p]),
        ("bpf_num_functions", ctypes.c_size_t, [ctypes.c_void_p]),
        ("bpf_function_name", ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_size_t]),
        ("bpf_module_license", ctypes.c_char_p, [ctypes.c_void_p]),
    ):
        getattr(lib, fn).restype = restype
        getattr(lib, fn).argtypes = argtypes
    return lib


_lib = _declare(ctypes.CDLL(libbcc.lib._name, use_errno=True))
