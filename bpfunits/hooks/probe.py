"""What this kernel offers, in one place: every kernel feature bpfunits depends on, the Linux
version that brought it, and a probe that finds out by trying it where nothing real can be
touched (programs that are never attached, or `lo` of a private network namespace that exists
only for the probe). Every decision that depends on the kernel asks `features()`; none assumes.
"""

from __future__ import annotations

import errno
import os
import resource
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from functools import cache, partial

from bpfunits.btf.kernel import kernel_func_id
from bpfunits.btf.types import BtfError
from bpfunits.errors import BpfUnitsError
from bpfunits.hooks import Hook
from bpfunits.hooks import clsbpf, xdp
from bpfunits.sys import bpf, netns, rtnl
from bpfunits.linker import asm
from bpfunits.linker.asm import FP, R0, R1, R2, R3
from bpfunits.linker.btf import FUNC_INFO_REC_SIZE, func_btf

# The oldest kernel the matrix (`make test-kernels`) runs bpfunits on.
MINIMUM_TESTED = "5.10"


class XdpBackend(str, Enum):
    AUTO = "auto"
    LINK = "link"
    NETLINK = "netlink"


class TcBackend(str, Enum):
    AUTO = "auto"
    TCX = "tcx"
    CLS_BPF = "cls_bpf"


@dataclass(frozen=True)
class Feature:
    key: str
    title: str
    since: str  # the mainline release that brought it
    used_for: str


JMP32 = Feature("jmp32", "32-bit jumps (BPF_JMP32)", "5.1", "every chain: verdict compares")
BPF_CALLS = Feature("bpf_calls", "bpf-to-bpf calls", "4.16", "components called as subprograms")
MAP_FREEZE = Feature("map_freeze", "frozen read-only maps (BPF_MAP_FREEZE)", "5.2", "every chain: its manifest map")
FUNC_INFO = Feature("func_info", "BTF func info for subprograms", "5.0", "chains whose subprograms tail-call")
SUBPROG_TAIL_CALLS = Feature(
    "subprog_tail_calls", "tail calls from bpf-to-bpf subprograms", "5.10", "units that make tail calls"
)
# What the linker's call mode relies on: the tail-called program returns to the subprogram's
# caller, as a component that tail-calls returns to the chain.
SUBPROG_TAIL_CALL_RETURNS = Feature(
    "subprog_tail_call_returns", "a tail call from a subprogram returns to the subprogram's caller", "5.10",
    "units that make tail calls",
)
MEMCG_ACCOUNTING = Feature(
    "memcg_accounting", "BPF memory charged to the memory cgroup, not to RLIMIT_MEMLOCK", "5.11",
    "loading without raising RLIMIT_MEMLOCK (bpfunits raises it where the kernel lacks this)",
)
BPF_LOOP = Feature("bpf_loop", "the bpf_loop helper", "5.17", "units that call bpf_loop (their callbacks are linked)")
XDP_LINK = Feature("xdp_link", "XDP through bpf_link (BPF_LINK_CREATE)", "5.9", "xdp_backend link (auto prefers it)")
LINK_UPDATE = Feature(
    "link_update", "atomic program swap of an XDP link (BPF_LINK_UPDATE)", "5.9", "replacing a chain on xdp-link"
)
XDP_REPLACE = Feature(
    "xdp_netlink_replace", "XDP_FLAGS_REPLACE with IFLA_XDP_EXPECTED_FD", "5.7", "replacing a chain on xdp-netlink"
)
TCX = Feature("tcx", "tcx links on tc hooks", "6.6", "tc_backend tcx (auto prefers it)")
TCX_QUERY = Feature("tcx_query", "BPF_PROG_QUERY on tcx hooks", "6.6", "observing tc hooks' tcx programs")
CLS_BPF = Feature("cls_bpf", "clsact qdisc with direct-action cls_bpf", "4.5", "tc_backend cls_bpf")
BPF_STATS = Feature(
    "bpf_stats", "run-time statistics (kernel.bpf_stats_enabled)", "5.1", "run_time_ns in `bpftool prog`"
)
FREPLACE = Feature(
    "freplace", "BPF_PROG_TYPE_EXT (freplace) permitted", "5.6", "libxdp's dispatcher (xdp-loader) beside bpfunits"
)
PERF_LINK = Feature("perf_link", "bpf_link for perf events (BPF_LINK_CREATE, BPF_PERF_EVENT)", "5.15",
                    "units on tracepoint, kprobe and uprobe hooks")
CGROUP_LINK = Feature("cgroup_link", "bpf_link for cgroup hooks", "5.7", "units on cgroup-* hooks")
CGROUP_MPROG = Feature("cgroup_mprog", "placing cgroup links before or after others (BPF_F_BEFORE/AFTER)", "6.16",
                       "ordering the units of a cgroup hook by After=/Before=")
KPROBE_EVENTS = Feature("kprobe_events", "kprobe events (CONFIG_KPROBE_EVENTS)", "4.17", "units on kprobe hooks")
UPROBE_EVENTS = Feature("uprobe_events", "uprobe events (CONFIG_UPROBE_EVENTS)", "4.17", "units on uprobe hooks")
TRACING_PROGS = Feature("tracing", "BPF_PROG_TYPE_TRACING (fentry/fexit) permitted", "5.5",
                        "units on fentry and fexit hooks")

FEATURES: tuple[Feature, ...] = (
    MEMCG_ACCOUNTING, JMP32, BPF_CALLS, MAP_FREEZE, FUNC_INFO, SUBPROG_TAIL_CALLS, SUBPROG_TAIL_CALL_RETURNS, BPF_LOOP,
    XDP_LINK, LINK_UPDATE, XDP_REPLACE, TCX, TCX_QUERY, CLS_BPF, BPF_STATS, FREPLACE,
    PERF_LINK, CGROUP_LINK, CGROUP_MPROG, KPROBE_EVENTS, UPROBE_EVENTS, TRACING_PROGS,
)  # fmt: skip

# What bpfunits cannot run without: each entry is satisfied by any one of its features.
REQUIRED: tuple[tuple[str, tuple[Feature, ...]], ...] = (
    ("linking chains", (JMP32,)),
    ("linking chains", (BPF_CALLS,)),
    ("linking chains", (MAP_FREEZE,)),
    ("swapping an XDP chain atomically", (XDP_LINK, XDP_REPLACE)),
    ("attaching on tc hooks", (TCX, CLS_BPF)),
)


@dataclass(frozen=True)
class Probed:
    feature: Feature
    available: bool
    reason: str  # why not (the kernel's error), empty when available


@dataclass
class Features:
    """What this kernel has. A feature is probed when first asked about: a command that needs
    only some (an apply with nothing to change needs no XDP swap) does not pay for every probe."""

    kernel: str  # the release, as uname reports it
    known: dict[Feature, Probed]
    probe: Callable[[Feature], Probed] | None = None  # None: `known` is all there is
    # One probe at a time: they share one namespace and its lo, where two XDP probes at once (the
    # daemon's reconcile and a metrics scrape) would make one fail, and the feature count as missing.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def assume(cls, kernel: str = "assumed", **available: bool) -> Features:
        """Features as given (unnamed ones available): for deciding without a kernel at hand."""
        unknown = set(available) - {f.key for f in FEATURES}
        if unknown:
            raise ValueError(f"unknown features: {sorted(unknown)}")
        return cls(kernel, {f: Probed(f, available.get(f.key, True), "") for f in FEATURES})

    @property
    def probed(self) -> tuple[Probed, ...]:
        """Every feature, probed now if not yet."""
        return tuple(self._get(f) for f in FEATURES)

    def _get(self, feature: Feature) -> Probed:
        with self._lock:
            if feature not in self.known:
                if self.probe is None or feature not in FEATURES:
                    raise KeyError(feature.key)
                self.known[feature] = self.probe(feature)
            return self.known[feature]

    def has(self, feature: Feature) -> bool:
        return self._get(feature).available

    def missing(self, feature: Feature) -> str:
        """The error for needing `feature` here, naming the release that brought it."""
        probed = self._get(feature)
        why = f" ({probed.reason})" if probed.reason else ""
        return (
            f"this kernel ({self.kernel}) lacks {feature.title}{why}, which {feature.used_for} needs: "
            f"it came with Linux {feature.since}"
        )

    def unmet(self) -> list[str]:
        """What bpfunits needs and this kernel lacks, one line each."""
        return [
            f"{purpose}: needs {' or '.join(f'{f.title} (Linux {f.since})' for f in options)}"
            for purpose, options in REQUIRED
            if not any(self.has(f) for f in options)
        ]

    def require_supported(self) -> None:
        unmet = self.unmet()
        if unmet:
            raise BpfUnitsError(
                f"this kernel ({self.kernel}) cannot run bpfunits (tested on Linux {MINIMUM_TESTED} and newer; "
                "`bpfunits probe` shows every feature):\n  " + "\n  ".join(unmet)
            )

    def to_json(self) -> dict:
        return {
            "kernel": self.kernel,
            "features": {
                p.feature.key: {
                    "available": p.available,
                    "title": p.feature.title,
                    "since": p.feature.since,
                    "used_for": p.feature.used_for,
                    **({"reason": p.reason} if p.reason else {}),
                }
                for p in self.probed
            },
            "unmet": self.unmet(),
        }


# --- probes: each returns None when the feature works, else the kernel's reason ---------------


def _prog(insns: list[asm.Insn], prog_type: int = bpf.ProgType.XDP, **kind) -> int:
    return bpf.prog_load(prog_type, asm.encode(insns), name="bpfunits_probe", log_size=1 << 16, **kind)


def _load_error(insns: list[asm.Insn], prog_type: int = bpf.ProgType.XDP, **kind) -> bpf.BpfError | None:
    try:
        os.close(_prog(insns, prog_type, **kind))
    except bpf.BpfError as e:
        return e
    return None


_STATS_LINES = ("processed ", "verification time", "stack depth")


def _reason(e: bpf.BpfError) -> str:
    """The kernel's error, with the verifier's last complaint when there is a log."""
    log = getattr(e, "log", "")
    lines = [line for line in log.strip().splitlines() if not line.startswith(_STATS_LINES)]
    return f"{e.message}: {lines[-1]}" if lines else e.message


def _loads(insns: list[asm.Insn], prog_type: int = bpf.ProgType.XDP, **kind) -> str | None:
    e = _load_error(insns, prog_type, **kind)
    return None if e is None else _reason(e)


def _returns(value: int) -> list[asm.Insn]:
    return [asm.mov64_imm(R0, value), asm.exit_()]


def _jmp32() -> str | None:
    return _loads([asm.mov32_imm(R0, 2), asm.jmp32_imm(asm.JEQ, R0, 2, 0), asm.exit_()])


def _bpf_calls() -> str | None:
    return _loads([asm.call_pseudo(1), asm.exit_(), *_returns(2)])


def _map_freeze() -> str | None:
    try:
        fd = bpf.map_create(bpf.MapType.ARRAY, 4, 4, 1, name="bpfunits_probe", flags=bpf.BPF_F_RDONLY_PROG)
    except bpf.BpfError as e:
        return e.strerror
    try:
        bpf.map_freeze(fd)
    except bpf.BpfError as e:
        return e.strerror
    finally:
        os.close(fd)
    return None


def _with_func_info(insns: list[asm.Insn], func_starts: tuple[int, ...], prog_type: int) -> str | None:
    btf = func_btf(func_starts)
    try:
        btf_fd = bpf.btf_load(btf.blob)
    except bpf.BpfError as e:
        return e.strerror
    try:
        return _loads(insns, prog_type, prog_btf_fd=btf_fd, func_info=btf.func_info,
                      func_info_rec_size=FUNC_INFO_REC_SIZE)
    finally:
        os.close(btf_fd)


def _func_info() -> str | None:
    return _with_func_info([asm.call_pseudo(1), asm.exit_(), *_returns(2)], (0, 2), bpf.ProgType.XDP)


_MARK = 0x5EED
_SUB = 10  # where the subprogram of `_calling_a_tail_call` starts
# What main returns when the tail-called program's 3 came back to it: 3 plus main's 10.
_RETURNED_TO_MAIN = 13


def _calling_a_tail_call(jump_table: int) -> list[asm.Insn]:
    """Shaped like a chain with a called component: main keeps the context and a mark in its
    stack across a call to a subprogram that uses stack of its own and tail-calls slot 0 (r1,
    the context, passes through). main returns what the call returned plus 10, or 100 if its
    mark did not survive; the subprogram returns 0 if the slot is empty."""
    return [
        asm.stx_dw(FP, R1, -8), asm.mov64_imm(R2, _MARK), asm.stx_dw(FP, R2, -16),
        asm.call_pseudo(_SUB - 4),
        asm.ldx_dw(R2, FP, -16), asm.jmp_imm(asm.JEQ, R2, _MARK, 2), *_returns(100),
        asm.add64_imm(R0, 10), asm.exit_(),
        asm.st_w(FP, -4, 0), *asm.ld_map_fd(R2, jump_table), asm.mov64_imm(R3, 0),
        asm.call_helper(asm.HELPER_TAIL_CALL), *_returns(0),
    ]  # fmt: skip


def _subprog_tail_calls() -> str | None:
    jump_table = bpf.map_create(bpf.MapType.PROG_ARRAY, 4, 4, 1, name="bpfunits_probe")
    try:
        return _with_func_info(_calling_a_tail_call(jump_table), (0, _SUB), bpf.ProgType.XDP)
    finally:
        os.close(jump_table)


def _subprog_tail_call_returns() -> str | None:
    jump_table = bpf.map_create(bpf.MapType.PROG_ARRAY, 4, 4, 1, name="bpfunits_probe")
    target = _prog(_returns(3))
    btf = func_btf((0, _SUB))
    btf_fd = bpf.btf_load(btf.blob)
    try:
        bpf.map_update(jump_table, struct.pack("<I", 0), struct.pack("<I", target))
        prog = _prog(_calling_a_tail_call(jump_table), prog_btf_fd=btf_fd, func_info=btf.func_info,
                     func_info_rec_size=FUNC_INFO_REC_SIZE)
        try:
            got = bpf.prog_test_run(prog, bytes(64)).retval
        finally:
            os.close(prog)
    finally:
        for fd in (btf_fd, target, jump_table):
            os.close(fd)
    # 13: the target's 3 came back to main, its stack intact; 3: the tail call ended the whole
    # program; 100: main's stack was overwritten.
    if got == _RETURNED_TO_MAIN:
        return None
    what = {3: "the tail call ended the whole program", 100: "the caller's stack was overwritten"}
    return f"test run returned {got}, not {_RETURNED_TO_MAIN}: {what.get(got, 'unexpected')}"


_HELPER_BPF_LOOP = 181
# bpf_ktime_get_coarse_ns came in the same release as memcg accounting of BPF memory; libbpf
# probes the accounting by this helper too (nothing shows the accounting itself).
_HELPER_KTIME_GET_COARSE_NS = 160


def _helper(helper_id: int) -> Callable[[], str | None]:
    """A helper exists if the verifier objects to anything but the helper itself (as bpftool's
    probe does): the call below passes arguments no helper accepts."""

    def probe() -> str | None:
        e = _load_error([asm.call_helper(helper_id), *_returns(2)])
        log = getattr(e, "log", "")
        if e is not None and ("invalid func" in log or "unknown func" in log):
            return _reason(e)
        return None

    return probe


def _can_link(prog_type: int, ret: int, attach_type: int, flags: int = 0) -> str | None:
    prog = _prog(_returns(ret), prog_type)
    try:
        link = bpf.link_create(prog, 1, attach_type, flags=flags)  # ifindex 1: the private lo
    except bpf.BpfError as e:
        return e.strerror
    finally:
        os.close(prog)
    os.close(link)
    return None


_XDP_GENERIC = 2  # XDP_FLAGS_SKB_MODE: lo has no driver XDP


def _xdp_link() -> str | None:
    return _can_link(bpf.ProgType.XDP, 2, bpf.AttachType.XDP, flags=_XDP_GENERIC)


def _swaps(swap: Callable[[int, int], None]) -> str | None:
    """Whether `swap(first, second)`, attaching `first` on the private lo and then replacing it
    by `second` in one step, works."""
    first, second = _prog(_returns(2)), _prog(_returns(2))
    try:
        swap(first, second)
    except (bpf.BpfError, rtnl.RtnlError) as e:
        return e.strerror
    finally:
        os.close(first)
        os.close(second)
    return None


def _link_swap(first: int, second: int) -> None:
    link = bpf.link_create(first, 1, bpf.AttachType.XDP, flags=_XDP_GENERIC)
    try:
        bpf.link_update(link, second, old_prog_fd=first)
    finally:
        os.close(link)


def _netlink_swap(first: int, second: int) -> None:
    xdp.netlink_set(1, first, _XDP_GENERIC)
    try:
        xdp.netlink_set(1, second, _XDP_GENERIC, expected_fd=first)
    finally:
        xdp.netlink_set(1, -1, _XDP_GENERIC)  # lo free again for the next probe


def _tcx() -> str | None:
    return _can_link(bpf.ProgType.SCHED_CLS, -1, bpf.AttachType.TCX_INGRESS)  # TCX_NEXT


def _tcx_query() -> str | None:
    try:
        bpf.prog_query(1, bpf.AttachType.TCX_INGRESS)  # ENOENT (never used here) counts as an answer
    except bpf.BpfError as e:
        return e.strerror
    return None


def _cls_bpf() -> str | None:
    prog = _prog(_returns(-1), bpf.ProgType.SCHED_CLS)
    try:
        clsbpf.put(1, Hook.TC_INGRESS, prog, clsbpf.Slot(), "bpfunits_probe")
    except rtnl.RtnlError as e:
        return e.strerror
    finally:
        os.close(prog)
    return None


def _bpf_stats() -> str | None:
    # The switch that BPF_ENABLE_STATS (5.8) also flips; reading it changes nothing.
    if os.path.exists("/proc/sys/kernel/bpf_stats_enabled"):
        return None
    return "no /proc/sys/kernel/bpf_stats_enabled"


def _freplace() -> str | None:
    # Without a target an EXT program is refused with EINVAL where the type is permitted, and
    # with EPERM (before verification) where it is not.
    try:
        os.close(_prog(_returns(0), bpf.ProgType.EXT))
    except bpf.BpfError as e:
        if e.errno == errno.EPERM:
            return e.strerror
    return None


def _link_kind(prog_type: int, attach_type: int, flags: int = 0) -> str | None:
    # As libbpf probes it: with no target (fd -1), a kernel that has the kind of link looks for
    # the target and fails with EBADF; one that has not refuses the attach type first. So with
    # flags: a kernel that does not know them for this kind refuses them before the target.
    prog = _prog(_returns(0), prog_type)
    try:
        os.close(bpf.link_create(prog, -1 & 0xFFFFFFFF, attach_type, flags=flags))
    except bpf.BpfError as e:
        if e.errno != errno.EBADF:
            return e.strerror
    finally:
        os.close(prog)
    return None


def _cgroup_mprog() -> str | None:
    # A placement with a stale expected revision, in a cgroup the probe makes and removes: a
    # kernel with cgroup mprog (6.16; Debian's 6.12 carries it) refuses it (ESTALE) and creates
    # nothing; one without refuses the flags (EINVAL). The program lets every packet through, in a
    # cgroup nothing runs in, and its link would go with its fd, before the cgroup does.
    mount = _cgroup2_mount()
    if mount is None:
        return "no cgroup2 hierarchy mounted (/proc/self/mountinfo)"
    folder = os.path.join(mount, f"bpfunits-probe-{os.getpid()}-{threading.get_ident()}")
    try:
        os.mkdir(folder, 0o700)
    except OSError as e:  # a read-only hierarchy (a container's): no cgroup to order units in
        return f"cannot make a cgroup in {mount}: {e.strerror}"
    try:
        target = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        prog = _prog(_returns(1), bpf.ProgType.CGROUP_SKB)
        try:
            os.close(bpf.link_create(prog, target, bpf.AttachType.CGROUP_INET_INGRESS, flags=bpf.BPF_F_BEFORE,
                                     expected_revision=_STALE_REVISION))
        except bpf.BpfError as e:
            return None if e.errno == errno.ESTALE else e.strerror
        finally:
            os.close(prog)
            os.close(target)
    finally:
        os.rmdir(folder)
    return "a stale expected_revision was taken on a cgroup link"


_STALE_REVISION = 1 << 40  # a revision no cgroup hook reaches


def _cgroup2_mount() -> str | None:
    """Where a cgroup2 hierarchy is mounted (the first in this mount namespace), if anywhere."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
        for line in mounts:
            mount, _, fs = line.partition(" - ")
            if fs.split(" ", 1)[0] == "cgroup2":
                return mount.split(" ")[4].replace("\\040", " ")  # mount point, spaces escaped
    return None


def _pmu(name: str) -> Callable[[], str | None]:
    def probe() -> str | None:
        folder = f"/sys/bus/event_source/devices/{name}"
        return None if os.path.isdir(folder) else f"no {folder}"

    return probe


# A function made for fentry tests (net/bpf/test_run.c, 5.5+): in vmlinux BTF and traceable.
_TRACING_PROBE_TARGET = "bpf_fentry_test1"


def _tracing() -> str | None:
    # A real fentry program, loaded against a function of vmlinux BTF as a unit's is (never
    # attached): a kernel without BTF has no function to load it against, one that refuses the
    # type says EPERM before verification.
    try:
        target = kernel_func_id(_TRACING_PROBE_TARGET)
    except BtfError as e:
        return str(e)
    try:
        os.close(_prog(_returns(0), bpf.ProgType.TRACING, expected_attach_type=24, attach_btf_id=target))
    except bpf.BpfError as e:
        return e.strerror
    return None


_PROBES: dict[Feature, Callable[[], str | None]] = {
    JMP32: _jmp32,
    BPF_CALLS: _bpf_calls,
    MAP_FREEZE: _map_freeze,
    FUNC_INFO: _func_info,
    SUBPROG_TAIL_CALLS: _subprog_tail_calls,
    SUBPROG_TAIL_CALL_RETURNS: _subprog_tail_call_returns,
    BPF_LOOP: _helper(_HELPER_BPF_LOOP),
    MEMCG_ACCOUNTING: lambda: _loads([asm.call_helper(_HELPER_KTIME_GET_COARSE_NS), *_returns(2)]),
    XDP_LINK: _xdp_link,
    LINK_UPDATE: lambda: _swaps(_link_swap),
    XDP_REPLACE: lambda: _swaps(_netlink_swap),
    TCX: _tcx,
    TCX_QUERY: _tcx_query,
    CLS_BPF: _cls_bpf,
    BPF_STATS: _bpf_stats,
    FREPLACE: _freplace,
    PERF_LINK: lambda: _link_kind(bpf.ProgType.TRACEPOINT, bpf.AttachType.PERF_EVENT),
    CGROUP_LINK: lambda: _link_kind(bpf.ProgType.CGROUP_SKB, bpf.AttachType.CGROUP_INET_INGRESS),
    CGROUP_MPROG: _cgroup_mprog,
    KPROBE_EVENTS: _pmu("kprobe"),
    UPROBE_EVENTS: _pmu("uprobe"),
    TRACING_PROGS: _tracing,
}


def _run(feature: Feature, scratch: netns.Scratch) -> Probed:
    # In a private namespace (one for all probes: each leaves its lo as it found its XDP hook),
    # so that no probe touches an interface of the host.
    with scratch.entered():
        try:
            reason = _PROBES[feature]()
        except BpfUnitsError as e:  # the probe's own set-up failed: the feature is unusable
            reason = str(e)
    return Probed(feature, reason is None, reason or "")


@cache
def features() -> Features:
    """The kernel's features, each probed once per process when first asked about (the answer
    does not change while it runs). Where BPF
    memory counts against RLIMIT_MEMLOCK, the limit is raised first: it is charged per user, so
    what runs already (chains, pinned maps) may leave too little for even the probes."""
    scratch = netns.Scratch()
    memcg = _run(MEMCG_ACCOUNTING, scratch)
    if not memcg.available:
        _lift_memlock_limit()
    return Features(os.uname().release, {MEMCG_ACCOUNTING: memcg}, partial(_run, scratch=scratch))


def _lift_memlock_limit() -> None:
    """Raise RLIMIT_MEMLOCK as libbpf does on kernels that charge BPF memory to it (before
    5.11): the default (often 64 KiB or 8 MiB) refuses loads with EPERM."""
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (OSError, ValueError):
        # Without CAP_SYS_RESOURCE the hard limit stays; the soft one may still rise to it.
        # The service sets LimitMEMLOCK=infinity, so this is for hand-run commands.
        hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (hard, hard))


def choose_xdp_backend(choice: XdpBackend, features: Features) -> XdpBackend:
    """The XDP backend to use: a forced one if the kernel has it, else the best it has."""
    # Each backend needs its own way of swapping a chain in one step.
    needs = {XdpBackend.LINK: (XDP_LINK, LINK_UPDATE), XdpBackend.NETLINK: (XDP_REPLACE,)}
    if choice is XdpBackend.AUTO:
        return XdpBackend.LINK if all(features.has(f) for f in needs[XdpBackend.LINK]) else XdpBackend.NETLINK
    for feature in needs[choice]:
        if not features.has(feature):
            raise BpfUnitsError(f"XDP backend {choice.value!r} was asked for, but {features.missing(feature)}")
    return choice


def choose_tc_backend(choice: TcBackend, features: Features) -> TcBackend:
    """The tc backend to use: a forced one if the kernel has it, else the best it has."""
    if choice is TcBackend.AUTO:
        return TcBackend.TCX if features.has(TCX) else TcBackend.CLS_BPF
    if choice is TcBackend.TCX and not features.has(TCX):
        raise BpfUnitsError(f"tc backend 'tcx' was asked for, but {features.missing(TCX)}")
    if choice is TcBackend.CLS_BPF and not features.has(CLS_BPF):
        raise BpfUnitsError(f"tc backend 'cls_bpf' was asked for, but {features.missing(CLS_BPF)}")
    return choice
