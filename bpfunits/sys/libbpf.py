"""Debian's libbpf1 (libbpf.so.1, v1.1) through ctypes: open an ELF object, pick and type its
programs, load it, and read back programs and maps.

libbpf 1.1 can crash on a malformed object, so only the object worker (load/objworker.py) calls
this, never the process that reconciles.

libbpf reports through a process-wide print callback; `BpfObject` captures what it prints while
opening and loading (the verifier log among it) so errors can show it. Captures are serialised by
a lock.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bpfunits.closing import Closing
from bpfunits.errors import BpfUnitsError
from bpfunits.sys.libc import libc as _libc
from bpfunits.sys.libc import va_list_size

_lib = ctypes.CDLL("libbpf.so.1", use_errno=True)

_obj_p = ctypes.c_void_p
_prog_p = ctypes.c_void_p
_map_p = ctypes.c_void_p


def _fn(name: str, restype, *argtypes) -> None:
    f = getattr(_lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)


_fn("libbpf_version_string", ctypes.c_char_p)
_fn("bpf_object__open_mem", _obj_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
_fn("bpf_object__load", ctypes.c_int, _obj_p)
_fn("bpf_object__close", None, _obj_p)
_fn("bpf_object__next_program", _prog_p, _obj_p, _prog_p)
_fn("bpf_object__next_map", _map_p, _obj_p, _map_p)
_fn("bpf_program__name", ctypes.c_char_p, _prog_p)
_fn("bpf_program__section_name", ctypes.c_char_p, _prog_p)
_fn("bpf_program__type", ctypes.c_int, _prog_p)
_fn("bpf_program__set_type", ctypes.c_int, _prog_p, ctypes.c_int)
_fn("bpf_program__set_expected_attach_type", ctypes.c_int, _prog_p, ctypes.c_int)
_fn("bpf_program__set_attach_target", ctypes.c_int, _prog_p, ctypes.c_int, ctypes.c_char_p)
_fn("bpf_program__set_autoload", ctypes.c_int, _prog_p, ctypes.c_bool)
_fn("bpf_program__fd", ctypes.c_int, _prog_p)
_fn("bpf_program__insns", ctypes.c_void_p, _prog_p)
_fn("bpf_program__insn_cnt", ctypes.c_size_t, _prog_p)
_fn("bpf_map__name", ctypes.c_char_p, _map_p)
_fn("bpf_map__fd", ctypes.c_int, _map_p)
_fn("bpf_map__is_pinned", ctypes.c_bool, _map_p)
_fn("bpf_map__pin_path", ctypes.c_char_p, _map_p)
_fn("bpf_map__set_pin_path", ctypes.c_int, _map_p, ctypes.c_char_p)
_fn("bpf_map__reuse_fd", ctypes.c_int, _map_p, ctypes.c_int)
_fn("bpf_map__type", ctypes.c_int, _map_p)
_fn("bpf_map__key_size", ctypes.c_uint32, _map_p)
_fn("bpf_map__value_size", ctypes.c_uint32, _map_p)
_fn("bpf_map__max_entries", ctypes.c_uint32, _map_p)
_fn("bpf_map__map_flags", ctypes.c_uint32, _map_p)
_fn("bpf_map__btf_value_type_id", ctypes.c_uint32, _map_p)
_fn("bpf_map__initial_value", ctypes.c_void_p, _map_p, ctypes.POINTER(ctypes.c_size_t))
_fn("bpf_map__set_initial_value", ctypes.c_int, _map_p, ctypes.c_void_p, ctypes.c_size_t)
_fn("bpf_object__btf", ctypes.c_void_p, _obj_p)
_fn("btf__find_by_name_kind", ctypes.c_int32, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32)
_fn("btf__type_by_id", ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32)
_fn("btf__load_from_kernel_by_id", ctypes.c_void_p, ctypes.c_uint32)
_fn("btf__free", None, ctypes.c_void_p)
_fn("btf__raw_data", ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32))
_fn("btf__name_by_offset", ctypes.c_char_p, ctypes.c_void_p, ctypes.c_uint32)

# int (*)(enum libbpf_print_level, const char *fmt, va_list ap); on x86-64 a va_list argument
# is a pointer, which vsnprintf takes as it is.
_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_fn("libbpf_set_print", ctypes.c_void_p, ctypes.c_void_p)
_fn("libbpf_strerror", ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)
_libc.vsnprintf.restype = ctypes.c_int
_libc.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]

LIBBPF_WARN, LIBBPF_INFO, LIBBPF_DEBUG = 0, 1, 2
_OPEN_OPTS_SIZE = 80  # sizeof(struct bpf_object_open_opts) in libbpf 1.1
_OPEN_OPTS_OBJECT_NAME = 8
_OPEN_OPTS_PIN_ROOT_PATH = 24

PRINT_KEEP = 1 << 20  # of one long print (a verifier log), its first line and last bytes

_print_lock = threading.Lock()


class _Printed:
    """Where the print function collects while a `_capture` block runs (no lines outside one)."""

    lines: list[str] | None = None
    va_list_size = 0  # va_copy is a copy of this struct


@_PRINT_FN
def _print(level: int, fmt: bytes, ap: int) -> int:
    if _Printed.lines is None or level > LIBBPF_INFO:
        return 0
    # Measured on a copy of the arguments (a va_list is consumed), then printed whole.
    measure = ctypes.create_string_buffer(_Printed.va_list_size)
    ctypes.memmove(measure, ap, _Printed.va_list_size)
    n = _libc.vsnprintf(None, 0, fmt, measure)
    if n < 0:
        return n
    buf = ctypes.create_string_buffer(n + 1)
    _libc.vsnprintf(buf, n + 1, fmt, ap)
    _Printed.lines.append(keep_ends(buf.value.decode(errors="replace"), PRINT_KEEP))
    return n


def version() -> str:
    """The library's version, as "v1.1"."""
    return _lib.libbpf_version_string().decode()


def keep_ends(text: str, limit: int) -> str:
    """`text`, or when longer than `limit`, its first line (libbpf's "-- BEGIN PROG LOAD LOG --"
    marker) and its last `limit` characters: a verifier log's end says why it failed."""
    if len(text) <= limit:
        return text
    head = text[: text.find("\n") + 1]
    return f"{head}[... {len(text) - len(head) - limit} characters left out ...]\n{text[-limit:]}"


class LibbpfError(BpfUnitsError):
    """A libbpf call failed; `.errno` is its error and `.output` what libbpf printed meanwhile."""

    def __init__(self, message: str, err: int, output: str = "") -> None:
        super().__init__(message)
        self.errno = err
        self.output = output


@dataclass(frozen=True)
class ObjectProgram:
    """A program of an open object (valid while the object is open)."""

    handle: int
    name: str
    section: str
    type: int  # what libbpf guessed from the section, 0 (UNSPEC) when it could not

    def set_type(self, prog_type: int, expected_attach_type: int | None = None) -> None:
        _check(_lib.bpf_program__set_type(self.handle, prog_type), "bpf_program__set_type")
        if expected_attach_type is not None:
            _check(
                _lib.bpf_program__set_expected_attach_type(self.handle, expected_attach_type),
                "bpf_program__set_expected_attach_type",
            )

    def set_attach_target(self, function: str) -> None:
        """Load against kernel function `function` (fentry, fexit): libbpf finds its BTF id, in
        vmlinux first. After set_type: the attach type says which kind of BTF type to look for."""
        _check(_lib.bpf_program__set_attach_target(self.handle, 0, function.encode()),
               "bpf_program__set_attach_target")

    def set_autoload(self, autoload: bool) -> None:
        _check(_lib.bpf_program__set_autoload(self.handle, autoload), "bpf_program__set_autoload")

    @property
    def fd(self) -> int:
        return _lib.bpf_program__fd(self.handle)

    def insns(self) -> bytes:
        """The program's instructions; after load, fully relocated (map fds, subprograms)."""
        count = _lib.bpf_program__insn_cnt(self.handle)
        return ctypes.string_at(_lib.bpf_program__insns(self.handle), count * 8)


@dataclass(frozen=True)
class ObjectMap:
    """A map of an open object (valid while the object is open)."""

    handle: int
    name: str

    @property
    def fd(self) -> int:
        return _lib.bpf_map__fd(self.handle)

    @property
    def pin_path(self) -> str | None:
        if not _lib.bpf_map__is_pinned(self.handle):
            return None
        return self.requested_pin_path

    @property
    def requested_pin_path(self) -> str | None:
        """Where the map will be pinned (or reused from) at load, if anywhere."""
        path = _lib.bpf_map__pin_path(self.handle)
        return path.decode() if path else None

    def set_pin_path(self, path: Path | None) -> None:
        """Before load: pin the map at `path`, reusing a compatible map already pinned there;
        None: neither (a new map, not pinned)."""
        raw = os.fsencode(path) if path is not None else None
        _check(_lib.bpf_map__set_pin_path(self.handle, raw), f"bpf_map__set_pin_path({self.name})")

    def reuse_fd(self, fd: int) -> None:
        """Before load: use the map `fd` refers to instead of creating one (libbpf dups it)."""
        _check(_lib.bpf_map__reuse_fd(self.handle, fd), f"bpf_map__reuse_fd({self.name})")

    @property
    def btf_value_type_id(self) -> int:
        """For the map libbpf makes of a data section (.rodata, .data.x...), the section's DATASEC id."""
        return _lib.bpf_map__btf_value_type_id(self.handle)

    def patch_initial_value(self, patches: list[tuple[int, bytes]]) -> None:
        """Before load: overwrite (offset, bytes) ranges of a data section map's initial value."""
        size = ctypes.c_size_t()
        address = _lib.bpf_map__initial_value(self.handle, ctypes.byref(size))
        if not address:
            raise LibbpfError(f"map {self.name} has no initial value", 22)
        image = bytearray(ctypes.string_at(address, size.value))
        for offset, data in patches:
            if offset + len(data) > len(image):
                raise LibbpfError(f"map {self.name}: {len(data)} bytes at {offset} run past its {len(image)}", 22)
            image[offset: offset + len(data)] = data
        buf = ctypes.create_string_buffer(bytes(image), len(image))
        _check(_lib.bpf_map__set_initial_value(self.handle, buf, len(image)),
               f"bpf_map__set_initial_value({self.name})")

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        """(type, key size, value size, max entries, flags): what libbpf requires of a pinned
        map before it reuses it."""
        h = self.handle
        return (_lib.bpf_map__type(h), _lib.bpf_map__key_size(h), _lib.bpf_map__value_size(h),
                _lib.bpf_map__max_entries(h), _lib.bpf_map__map_flags(h))


_BTF_KIND_PTR, _BTF_KIND_STRUCT, _BTF_KIND_FWD = 2, 4, 7
_BTF_KIND_FUNC, _BTF_KIND_FUNC_PROTO = 12, 13
_BTF_MODIFIERS = {8, 9, 10, 11, 18}  # typedef, volatile, const, restrict, type tag


def _btf_type(btf: int, type_id: int) -> tuple[int, int, int, int] | None:
    """(name_off, info, size or type, address) of a struct btf_type; None for a bad id."""
    address = _lib.btf__type_by_id(btf, type_id)
    if not address:
        return None
    name_off, info, size_or_type = (ctypes.c_uint32 * 3).from_address(address)
    return name_off, info, size_or_type, address


def _kind(btf_type: tuple[int, int, int, int]) -> int:
    return (btf_type[1] >> 24) & 0x1F


def _strip_modifiers(btf: int, btf_type: tuple[int, int, int, int] | None) -> tuple[int, int, int, int] | None:
    for _ in range(32):  # a cycle of typedefs in a hostile object ends here
        if btf_type is None or _kind(btf_type) not in _BTF_MODIFIERS:
            return btf_type
        btf_type = _btf_type(btf, btf_type[2])
    return None


def kernel_btf(btf_id: int) -> bytes | None:
    """The raw BTF of the kernel's BTF object `btf_id` (bpfunits.btf.types parses it); None when
    it cannot be read."""
    btf = _lib.btf__load_from_kernel_by_id(btf_id)
    if not btf or btf > 2**64 - 4096:  # libbpf 1.x returns NULL; older, an encoded error
        return None
    try:
        size = ctypes.c_uint32()
        raw = _lib.btf__raw_data(btf, ctypes.byref(size))
        return ctypes.string_at(raw, size.value) if raw else None
    finally:
        _lib.btf__free(btf)


def strerror(err: int) -> str:
    """An errno, or one of libbpf's own (4000 and up: "Invalid BPF object format")."""
    buf = ctypes.create_string_buffer(128)
    _lib.libbpf_strerror(err, buf, len(buf))
    return buf.value.decode(errors="replace") or os.strerror(err)


def _check(ret: int, what: str) -> None:
    if ret < 0:
        raise LibbpfError(f"{what}: {strerror(-ret)}", -ret)


class BpfObject(Closing):
    """An open libbpf bpf_object, parsed from `data`: the caller reads the file once, so the
    bytes it checked (SHA256=) are the bytes that load. `path` names the object in messages and,
    as bpf_object__open_file would, gives the object its name (the file name up to its first
    '.'), which prefixes the names of its .data/.bss/.rodata maps and so their pins. Its fds
    live until close()."""

    def __init__(self, data: bytes, path: Path, *, pin_root_path: Path | None = None) -> None:
        self.path = Path(path)
        # libbpf keeps pointers into these until close(): they live as long as the object.
        self._data = ctypes.create_string_buffer(data, len(data))
        self._name = ctypes.create_string_buffer(os.fsencode(self.path.name.split(".")[0]))
        self._pin_root = ctypes.create_string_buffer(os.fsencode(pin_root_path)) if pin_root_path else None
        opts = ctypes.create_string_buffer(_OPEN_OPTS_SIZE)
        ctypes.c_size_t.from_buffer(opts, 0).value = _OPEN_OPTS_SIZE
        ctypes.c_void_p.from_buffer(opts, _OPEN_OPTS_OBJECT_NAME).value = ctypes.addressof(self._name)
        if self._pin_root is not None:
            ctypes.c_void_p.from_buffer(opts, _OPEN_OPTS_PIN_ROOT_PATH).value = ctypes.addressof(
                self._pin_root
            )
        with _capture() as output:
            handle = _lib.bpf_object__open_mem(ctypes.addressof(self._data), len(data), opts)
            err = ctypes.get_errno()
        if not handle:
            raise LibbpfError(f"cannot open BPF object {self.path}: {strerror(err)}", err, "".join(output))
        self._handle: int | None = handle

    @property
    def handle(self) -> int:
        if self._handle is None:
            raise BpfUnitsError(f"BPF object {self.path} is closed")
        return self._handle

    def programs(self) -> list[ObjectProgram]:
        progs, prev = [], None
        while prog := _lib.bpf_object__next_program(self.handle, prev):
            progs.append(
                ObjectProgram(
                    prog,
                    _lib.bpf_program__name(prog).decode(),
                    _lib.bpf_program__section_name(prog).decode(),
                    _lib.bpf_program__type(prog),
                )
            )
            prev = prog
        return progs

    def context_type(self, program: str) -> str | None:
        """What the object's BTF says function `program` takes as its first argument, the
        context, as "struct NAME" ("struct xdp_md", "struct __sk_buff"); None where it does not say."""
        btf = _lib.bpf_object__btf(self.handle)
        if not btf:
            return None
        func_id = _lib.btf__find_by_name_kind(btf, program.encode(), _BTF_KIND_FUNC)
        func = _btf_type(btf, func_id) if func_id > 0 else None
        proto = _btf_type(btf, func[2]) if func and _kind(func) == _BTF_KIND_FUNC else None
        if not proto or _kind(proto) != _BTF_KIND_FUNC_PROTO or not proto[1] & 0xFFFF:
            return None
        # The parameters (name_off, type) follow the proto's 12 bytes.
        first = _btf_type(btf, ctypes.c_uint32.from_address(proto[3] + 16).value)
        pointer = _strip_modifiers(btf, first)
        pointee = None
        if pointer and _kind(pointer) == _BTF_KIND_PTR:
            pointee = _strip_modifiers(btf, _btf_type(btf, pointer[2]))
        if not pointee or _kind(pointee) not in (_BTF_KIND_STRUCT, _BTF_KIND_FWD):
            return None
        name = _lib.btf__name_by_offset(btf, pointee[0])
        return f"struct {name.decode(errors='replace')}" if name else None

    def maps(self) -> list[ObjectMap]:
        maps, prev = [], None
        while m := _lib.bpf_object__next_map(self.handle, prev):
            maps.append(ObjectMap(m, _lib.bpf_map__name(m).decode()))
            prev = m
        return maps

    def load(self) -> None:
        """Create maps (reusing pinned ones) and load the autoload programs."""
        with _capture() as output:
            ret = _lib.bpf_object__load(self.handle)
        if ret < 0:
            raise LibbpfError(f"bpf_object__load: {strerror(-ret)}", -ret, "".join(output))

    def close(self) -> None:
        if self._handle is not None:
            _lib.bpf_object__close(self._handle)
            self._handle = None


class _capture:
    """Collect libbpf's printed output (warnings and info) during the block. The print function
    is set for the block only, since other users of libbpf.so.1 in the process (bcc) set theirs."""

    def __enter__(self) -> list[str]:
        size = va_list_size()  # here, where an unknown architecture can raise
        _print_lock.acquire()
        _Printed.lines, _Printed.va_list_size = [], size
        self._previous = _lib.libbpf_set_print(ctypes.cast(_print, ctypes.c_void_p))
        return _Printed.lines

    def __exit__(self, *exc: object) -> None:
        _lib.libbpf_set_print(self._previous)
        _Printed.lines = None
        _print_lock.release()


def iter_log_sections(output: str, begin: str, end: str) -> Iterator[str]:
    """The texts between `begin` and `end` markers in libbpf output."""
    rest = output
    while (start := rest.find(begin)) >= 0:
        stop = rest.find(end, start)
        if stop < 0:
            yield rest[start + len(begin) :]
            return
        yield rest[start + len(begin) : stop]
        rest = rest[stop + len(end) :]
