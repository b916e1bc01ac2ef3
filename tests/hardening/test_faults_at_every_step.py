"""Issue 11, proof: a fault at every kernel step of `apply`, and a SIGKILL at each.

`STEPS` names each step apply takes in the kernel and in its bpffs state root: the function it
calls, and which calls of it are that step. Four scenarios (a first attach, a unit added, a map
changing shape, every unit removed) run on each backend (XDP link and netlink, tcx where the kernel
has it, cls_bpf); `STEPS_TAKEN` lists the steps each takes without faults, in order, and
test_steps_taken checks it against the code, so the matrix cannot silently miss a step.

test_kill_at_step: apply runs in a forked child that SIGKILLs itself right before a step's first
call, or right after it returns; every change apply makes is a step, so a kill right after one and
a kill right before the next leave the same state, and each distinct point is killed once
(`kill_points`). Then: the hook runs a chain of ours, the old one or the new, whenever units wanted
it before and after (exactly the old one while nothing had changed yet), and it is ours (a chain
left without its pin is recognised by its manifest); the next apply succeeds and converges to the
wanted chain (its units in order, from the running program's manifest); a further apply changes
nothing; the only programs of this state root in the kernel (BPF_PROG_GET_NEXT_ID, their manifest's
owner) are the one the hook runs; the state root's bpffs tree holds that hook's pin and the wanted
units' maps, pinning the very maps that program uses, and nothing else (`link-new`, `prog-new`,
stale unit or hook folders).

test_error_at_step: a step fails in-process instead, with the error the kernel or bpffs gives
there (each backend's steps once, `ERROR_SCENARIOS`): apply exits 1 with that error on the hook, no
traceback; a hook whose swap had not happened runs exactly what it ran before, any other still runs
a chain of ours; the next apply converges as above.

What this found and bpfunits/hooks now does: detaching left a pin of what no longer ran when killed
between the detach and the unpin (a pinned detached link, or a pinned program, kept in the kernel for
ever with no hook to find it): pins are now removed first (pins.unpinned; a link then goes with the
process, a netlink or cls_bpf program still attached is adopted by its manifest); a failed rename of
a new pin left its `*-new` staging pin; and a bpffs error (a pin's rename or unlink) escaped attach,
replace and detach as a traceback instead of an error of the hook.

And in the reconciler: unit map pins left stale by a kill after the swap (MapPinsStale), empty
hook folders (EmptyHookFolders), and a failed unpin of a unit's maps in clean-up, which ended apply
with a traceback and is now an error naming the unit.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bpfunits import cli
from bpfunits.cli import main
from bpfunits.hooks import Hook
from bpfunits.hooks import probe, xdp
from bpfunits.sys import bpf, netns, rtnl
from bpfunits.state.bpffs import StateRoot
from bpfunits.load.mappins import MapPinError
from bpfunits.hooks.observe import observe
from bpfunits.linker.linker import PROG_NAME
from bpfunits.linker.manifest import read_manifest
from tests.hardening.statecli import BPF, hooks, run
from tests.timing import scaled
from tests.unitfiles import write

pytestmark = pytest.mark.kernel

INJECTED = "injected fault"


# --- the steps ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One call of a wrapped function, as a step's predicate sees it."""

    root: str  # the state root of the apply, with a trailing slash
    args: tuple
    kwargs: dict

    def arg(self, index: int, name: str, default: object = None) -> object:
        return self.args[index] if len(self.args) > index else self.kwargs.get(name, default)

    def under(self, index: int, name: str, folder: str) -> bool:
        """Whether path argument `index` lies in the state root's `folder`."""
        return str(self.arg(index, name, "")).startswith(self.root + folder + "/")


@dataclass(frozen=True)
class Step:
    module: str  # where callers look the function up at call time (so it is patched there)
    function: str  # an attribute of the module, or Class.attribute
    matches: Callable[[Call], bool]  # which calls of it are this step
    error: Callable[[], BaseException] | None  # what the kernel or bpffs raises when it fails there
    swaps: bool = False  # changes what the hook runs
    contains: tuple[str, ...] = ()  # steps it takes itself, before it returns


def _bpf_error(command: str, err: int) -> Callable[[], BaseException]:
    return lambda: bpf.BpfError(command, err, INJECTED)


def _rtnl_error(err: int) -> Callable[[], BaseException]:
    return lambda: rtnl.RtnlError(INJECTED, err)


def _os_error(err: int) -> Callable[[], BaseException]:
    return lambda: OSError(err, f"{os.strerror(err)} ({INJECTED})")


def _is_hook_pin(c: Call) -> bool:
    return c.under(0, "self", "hooks") and Path(str(c.arg(0, "self"))).name in ("link", "prog")


_BPF, _BPFFS = "bpfunits.sys.bpf", "bpfunits.state.bpffs"
_XDP, _CLSBPF = "bpfunits.hooks.xdp", "bpfunits.hooks.clsbpf"

STEPS: dict[str, Step] = {
    # Loading the linked chain (the units' own programs load earlier, in libbpf's worker).
    "load": Step(_BPF, "prog_load", lambda c: c.kwargs.get("name") == PROG_NAME, _bpf_error("BPF_PROG_LOAD", errno.ENOMEM)),
    # XDP links and tcx: created (attach), updated (swap), detached.
    "link_create": Step(_BPF, "link_create", lambda c: True, _bpf_error("BPF_LINK_CREATE", errno.EBUSY), swaps=True),
    "link_update": Step(_BPF, "link_update", lambda c: True, _bpf_error("BPF_LINK_UPDATE", errno.EPERM), swaps=True),
    "link_detach": Step(_BPF, "link_detach", lambda c: True, _bpf_error("BPF_LINK_DETACH", errno.EINVAL), swaps=True),
    # XDP through netlink: attach where nothing runs, swap the expected program, remove ours.
    "netlink_attach": Step(_XDP, "netlink_set", lambda c: bool(c.arg(2, "flags", 0) & xdp.XDP_FLAGS_UPDATE_IF_NOEXIST),
                           _rtnl_error(errno.EBUSY), swaps=True),
    "netlink_replace": Step(_XDP, "netlink_set", lambda c: c.arg(3, "expected_fd") is not None and c.arg(1, "prog_fd") >= 0,
                            _rtnl_error(errno.EEXIST), swaps=True),
    "netlink_detach": Step(_XDP, "netlink_set", lambda c: c.arg(1, "prog_fd") < 0, _rtnl_error(errno.EEXIST), swaps=True),
    # cls_bpf: the filter in our slot replaced in place (attach and swap alike), or deleted.
    "filter_replace": Step(_CLSBPF, "put", lambda c: True, _rtnl_error(errno.ENOMEM), swaps=True),
    "filter_delete": Step(_CLSBPF, "delete", lambda c: True, _rtnl_error(errno.ENOENT), swaps=True),
    # Folders, made (if missing) before an attach pins in its hook folder and a commit in a unit's:
    # no kernel step, but what a kill right before the next step leaves differs by them. (A folder
    # that cannot be made: test_one_bad_input's pinned object where a folder belongs.)
    "make_hook_folder": Step(_BPFFS, "StateRoot.make", lambda c: c.under(1, "folder", "hooks"), None),
    "make_unit_folder": Step(_BPFFS, "StateRoot.make", lambda c: c.under(1, "folder", "units"), None),
    # The hook's pin (`link` or `prog`): pinned as `*-new` and renamed over the old one; unpinned on
    # detach, and the emptied hook and interface folders removed (a failing rmdir means the folder
    # still holds something, which is no error).
    "pin_hook": Step(_BPF, "obj_pin", lambda c: c.under(1, "path", "hooks"), _bpf_error("BPF_OBJ_PIN", errno.ENOSPC)),
    "rename_hook": Step("os", "replace", lambda c: c.under(1, "dst", "hooks"), _os_error(errno.EIO)),
    "unpin_hook": Step("pathlib", "Path.unlink", _is_hook_pin, _os_error(errno.EIO)),
    "prune_hook": Step("pathlib", "Path.rmdir", lambda c: c.under(0, "self", "hooks"), None),
    # The units' maps, committed once the new chain runs: pinned as `*-new`, renamed over a pin of
    # another shape. A unit that runs nowhere any more has its folder removed.
    "map_commit": Step("bpfunits.load.mappins", "commit", lambda c: True, lambda: MapPinError(INJECTED),
                       contains=("make_unit_folder", "pin_map", "rename_map")),
    "pin_map": Step(_BPF, "obj_pin", lambda c: c.under(1, "path", "units"), _bpf_error("BPF_OBJ_PIN", errno.ENOSPC)),
    "rename_map": Step("os", "replace", lambda c: c.under(1, "dst", "units"), _os_error(errno.EIO)),
    "unpin_unit": Step("bpfunits.reconcile.engine", "remove_tree", lambda c: c.under(0, "path", "units"),
                       _os_error(errno.EBUSY)),
}


@dataclass(frozen=True)
class Fault:
    """At the `nth` call of `step`, right `before` it or `after` it returns: SIGKILL this
    process (`kill`), or else (before only) raise the step's error instead of calling it."""

    step: str
    when: str = "before"
    nth: int = 1
    kill: bool = True

    def strike(self) -> None:
        if self.kill:
            os.kill(os.getpid(), signal.SIGKILL)
        raise STEPS[self.step].error()


def _owner(module: str, function: str) -> tuple[object, str]:
    owner: object = importlib.import_module(module)
    *classes, attribute = function.split(".")
    for name in classes:
        owner = getattr(owner, name)
    return owner, attribute


@contextmanager
def injected(root: Path, fault: Fault | None = None, taken: list[str] | None = None) -> Iterator[None]:
    """Every step's function wrapped for the block: `taken` gets each step in the order they are
    called, and `fault` strikes where it says. Only this process: not the workers it forks."""
    pid, seen = os.getpid(), Counter()
    targets: dict[tuple[str, str], list[str]] = {}
    for name, step in STEPS.items():
        targets.setdefault((step.module, step.function), []).append(name)

    def wrap(real: Callable, names: list[str]) -> Callable:
        def wrapper(*args, **kwargs):
            if os.getpid() != pid:
                return real(*args, **kwargs)
            call = Call(f"{root}/", args, kwargs)
            armed = False
            for name in (n for n in names if STEPS[n].matches(call)):
                seen[name] += 1
                if taken is not None:
                    taken.append(name)
                armed |= fault is not None and fault.step == name and seen[name] == fault.nth
            if armed and fault.when == "before":
                fault.strike()
            result = real(*args, **kwargs)
            if armed and fault.when == "after":
                fault.strike()
            return result

        return wrapper

    originals = []
    try:
        for (module, function), names in targets.items():
            owner, attribute = _owner(module, function)
            originals.append((owner, attribute, getattr(owner, attribute)))
            setattr(owner, attribute, wrap(getattr(owner, attribute), names))
        yield
    finally:
        for owner, attribute, real in reversed(originals):
            setattr(owner, attribute, real)


# --- backends, units and scenarios ----------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    name: str  # as observe names it
    hook: Hook
    config: str
    pin: str  # what its hook folder pins
    program: str  # the prefix of the test programs for its hook


BACKENDS = {b.name: b for b in (
    Backend("xdp-link", Hook.XDP, "xdp_backend: link\n", "link", "xdp"),
    Backend("xdp-netlink", Hook.XDP, "xdp_backend: netlink\n", "prog", "xdp"),
    Backend("tcx", Hook.TC_INGRESS, "tc_backend: tcx\n", "link", "tc"),
    Backend("cls_bpf", Hook.TC_INGRESS, "tc_backend: cls_bpf\n", "prog", "tc"),
)}

# A map whose size a unit's next version changes: the "map" scenario replaces its pin.
SHAPE_SOURCE = """\
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
} slots SEC(".maps");

static __always_inline void bump(void)
{
	__u32 key = 0;
	__u64 *n = bpf_map_lookup_elem(&slots, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("xdp") int xdp_shape(struct xdp_md *ctx) { bump(); return XDP_PASS; }
SEC("tc") int tc_shape(struct __sk_buff *skb) { bump(); return -1; }

char LICENSE[] SEC("license") = "GPL";
"""


@dataclass(frozen=True)
class UnitSpec:
    object: str  # a file in bpf/, or shape<N>: SHAPE_SOURCE built with ENTRIES=N
    program: str  # its name without the hook's prefix
    maps: frozenset[str]  # what it pins in its unit folder
    extra: str = ""


ONE = UnitSpec("attach_counter.bpf.o", "count_a", frozenset({"counts"}))
TWO = UnitSpec("attach_counter.bpf.o", "count_b", frozenset({"counts"}), "Before=one")
SHAPE4 = UnitSpec("shape4", "shape", frozenset({"slots"}), "After=one")
SHAPE8 = UnitSpec("shape8", "shape", frozenset({"slots"}), "After=one")


@dataclass(frozen=True)
class Scenario:
    before: dict[str, UnitSpec]  # applied first
    after: dict[str, UnitSpec]  # what the faulted apply is asked for
    chain_before: tuple[str, ...]
    chain_after: tuple[str, ...]


SCENARIOS: dict[str, Scenario] = {
    "attach": Scenario({}, {"one": ONE, "two": TWO}, (), ("two", "one")),
    "add": Scenario({"one": ONE}, {"one": ONE, "two": TWO}, ("one",), ("two", "one")),
    "map": Scenario({"one": ONE, "shape": SHAPE4}, {"one": ONE, "shape": SHAPE8}, ("one", "shape"), ("one", "shape")),
    "remove": Scenario({"one": ONE, "two": TWO}, {}, ("two", "one"), ()),
}

# The steps each scenario's apply takes without faults, in order (a step inside another one, as
# pin_map in map_commit, follows it).
_TWO_NEW_UNITS_PINNED = "map_commit make_unit_folder pin_map rename_map " * 2
_PRUNED = "prune_hook prune_hook unpin_unit unpin_unit"
STEPS_TAKEN: dict[tuple[str, str], tuple[str, ...]] = {key: tuple(steps.split()) for key, steps in {
    ("xdp-link", "attach"): f"load make_hook_folder link_create pin_hook rename_hook {_TWO_NEW_UNITS_PINNED}",
    ("xdp-link", "add"): "load link_update map_commit make_unit_folder pin_map rename_map map_commit",
    ("xdp-link", "map"): "load link_update map_commit map_commit make_unit_folder pin_map rename_map",
    ("xdp-link", "remove"): f"unpin_hook link_detach {_PRUNED}",
    ("xdp-netlink", "attach"): f"load make_hook_folder netlink_attach pin_hook rename_hook {_TWO_NEW_UNITS_PINNED}",
    ("xdp-netlink", "add"):
        "load netlink_replace pin_hook rename_hook map_commit make_unit_folder pin_map rename_map map_commit",
    ("xdp-netlink", "map"):
        "load netlink_replace pin_hook rename_hook map_commit map_commit make_unit_folder pin_map rename_map",
    ("xdp-netlink", "remove"): f"unpin_hook netlink_detach {_PRUNED}",
    ("tcx", "attach"): f"load make_hook_folder link_create pin_hook rename_hook {_TWO_NEW_UNITS_PINNED}",
    ("tcx", "add"): "load link_update map_commit make_unit_folder pin_map rename_map map_commit",
    ("tcx", "map"): "load link_update map_commit map_commit make_unit_folder pin_map rename_map",
    ("tcx", "remove"): f"unpin_hook link_detach {_PRUNED}",
    ("cls_bpf", "attach"): f"load make_hook_folder filter_replace pin_hook rename_hook {_TWO_NEW_UNITS_PINNED}",
    ("cls_bpf", "add"):
        "load filter_replace pin_hook rename_hook map_commit make_unit_folder pin_map rename_map map_commit",
    ("cls_bpf", "map"):
        "load filter_replace pin_hook rename_hook map_commit map_commit make_unit_folder pin_map rename_map",
    ("cls_bpf", "remove"): f"unpin_hook filter_delete {_PRUNED}",
}.items()}


# What a kill leaves is the state between two steps: point i is right before the i-th step taken
# (len(taken): after the last). Every change apply makes to the kernel and the state root is a
# step, so a kill right after a step returns leaves what a kill right before the next one does:
# each distinct point is killed once.


def _point(taken: tuple[str, ...], step: str, when: str) -> int:
    """Where a fault at `step`'s first call strikes: before it, or after it returned (and so after
    the steps it contains)."""
    i = taken.index(step)
    if when == "before":
        return i
    while i + 1 < len(taken) and taken[i + 1] in STEPS[step].contains:
        i += 1
    return i + 1


def kill_points(taken: tuple[str, ...]) -> dict[int, tuple[str, str]]:
    """Each distinct point a kill at a step's first call reaches, with the first (step, when)
    that reaches it."""
    points: dict[int, tuple[str, str]] = {}
    for step in dict.fromkeys(taken):
        for when in ("before", "after"):
            points.setdefault(_point(taken, step, when), (step, when))
    return points


def _swap(taken: tuple[str, ...]) -> int:
    return next(i for i, name in enumerate(taken) if STEPS[name].swaps)


def _unchanged_until(taken: tuple[str, ...]) -> int:
    """Up to this point, what the hook runs has not changed (a link unpinned leaves its hook with
    the process's fd)."""
    return min(_swap(taken), taken.index("unpin_hook") if "unpin_hook" in taken else len(taken))


# --- what the next apply repairs ------------------------------------------------------------------


class MapPinsStale(AssertionError):
    """Apply pins a unit's maps only once the hook runs the new chain. Killed between the swap and
    the last map's pin (or when pinning fails), the chain ran with maps that were not pinned (a
    new unit) or not the pinned ones (a shape change), and the next apply, finding the chain
    unchanged, never pinned them. Chains' manifests now name their maps: a pin that is gone is
    pinned again from the running chain, and a running map other than the pinned one makes the
    hook rebuilt."""


class EmptyHookFolders(AssertionError):
    """Killed after a hook's program and pin went but before its folders were pruned, empty
    `hooks/ns*/if*/HOOK` folders stayed for ever: clean-up now prunes the hooks it looked at."""


def _marks(backend: str) -> list:
    return [pytest.mark.needs(probe.TCX)] if backend == "tcx" else []


def _kill_cases() -> list:
    """(backend, scenario, step, when) for each distinct point of each scenario."""
    return [pytest.param(backend, scenario, step, when, marks=_marks(backend),
                         id=f"{backend}-{scenario}-{when}-{step}")
            for (backend, scenario), taken in STEPS_TAKEN.items() for step, when in kill_points(taken).values()]


# A step fails the same way whichever scenario takes it: each backend's steps fail once, in the
# first of these scenarios that takes them (where the hook ran a chain before, if any does).
ERROR_SCENARIOS = ("add", "map", "remove", "attach")


def _error_cases() -> list:
    """(backend, scenario, step) for each step each backend takes that can fail, at its first call."""
    cases: dict[tuple[str, str], object] = {}
    for scenario in ERROR_SCENARIOS:
        for backend in BACKENDS:
            for step in STEPS_TAKEN[backend, scenario]:
                if STEPS[step].error is not None and (backend, step) not in cases:
                    cases[backend, step] = pytest.param(backend, scenario, step, id=f"{backend}-{scenario}-{step}",
                                                        marks=_marks(backend))
    return list(cases.values())


# --- the rig ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def one_parser() -> Iterator[None]:
    """Every apply here parses its arguments with one parser: building it costs a fifth of an
    apply, and this file runs some 700."""
    built = cli.parser()
    real, cli.parser = cli.parser, lambda: built
    yield
    cli.parser = real


@pytest.fixture(scope="module")
def shape_objects(tmp_path_factory, bpf_objects) -> Path:
    """SHAPE_SOURCE built as shape4.bpf.o and shape8.bpf.o."""
    folder = tmp_path_factory.mktemp("shape")
    (folder / "shape.bpf.c").write_text(SHAPE_SOURCE)
    arch = f"/usr/include/{os.uname().machine}-linux-gnu"
    for entries in (4, 8):
        subprocess.run(["clang", "-O2", "-g", "-Wall", "-Werror", "-target", "bpf", f"-I{arch}", f"-DENTRIES={entries}",
                        "-c", str(folder / "shape.bpf.c"), "-o", str(folder / f"shape{entries}.bpf.o")],
                       check=True, capture_output=True)
    return folder


@dataclass
class Rig:
    """One backend's hook on a veth of the test's namespace, with a state root and units folder."""

    backend: Backend
    ns: str
    ifname: str
    ifindex: int
    root: StateRoot
    units: Path
    config: Path
    shapes: Path

    def write_units(self, specs: dict[str, UnitSpec]) -> None:
        self.units.mkdir(exist_ok=True)
        for old in self.units.iterdir():
            old.unlink()
        for name, spec in specs.items():
            obj = self.shapes / f"{spec.object}.bpf.o" if spec.object.startswith("shape") else BPF / spec.object
            write(self.units, f"{name}.unit",
                  f"[Unit]\n{spec.extra}\n[Program]\nObject={obj}\nName={self.backend.program}_{spec.program}\n"
                  f"[Attach]\nHook={self.backend.hook.value}\nInterfaces={self.ifname}\n")

    def argv(self) -> list[str]:
        return ["apply", "--netns", self.ns, "--units-dir", str(self.units), "--bpffs-root", str(self.root.path),
                "--config", str(self.config), "--json", "--detailed-exitcode"]

    def apply(self, capsys) -> tuple[int, dict]:
        """`apply --json --detailed-exitcode` in-process: its exit code and its JSON."""
        return run(capsys, "apply", self.ns, self.units, self.root.path, "--config", str(self.config))

    def hook_doc(self, doc: dict) -> dict | None:
        return hooks(doc).get((self.ifname, self.backend.hook.value))

    def chain(self) -> tuple[int, tuple[str, ...]] | None:
        """The one program on the hook and the units its manifest lists; None if nothing runs.
        Anything else there (a second program, one that is not ours) fails."""
        with netns.inside(self.ns):
            programs = observe(self.ifindex, self.backend.hook, self.root).programs
        if not programs:
            return None
        (program,) = programs
        manifest = read_manifest(program.prog_id)
        assert program.ours and manifest is not None and manifest.owner == str(self.root.path), program
        assert program.backend.value == self.backend.name, program
        return program.prog_id, tuple(c.unit for c in manifest.components)

    def hook_path(self) -> Path:
        with netns.inside(self.ns):
            return self.root.hook_path(self.ifindex, self.backend.hook)


@pytest.fixture
def rig_for(tmp_path, veth_pair, bpffs_root, shape_objects) -> Callable[[str], Rig]:
    probe.features().probed  # noqa: B018 (every probe now, so that none of their calls counts as an apply's step)

    def make(backend: str) -> Rig:
        b = BACKENDS[backend]
        config = write(tmp_path, "bpfunits.yaml", f"{b.config}lock_file: {tmp_path / 'lock'}\n")
        return Rig(b, veth_pair.ns_a, veth_pair.if_a, veth_pair.ifindex_a, bpffs_root, tmp_path / "units", config,
                   shape_objects)

    return make


# --- what must hold ---------------------------------------------------------------------------------


def _our_programs(root: StateRoot) -> set[int]:
    """The chains in the kernel whose manifest names this state root as their owner."""
    found = set()
    for prog_id in bpf.prog_ids():
        try:
            fd = bpf.prog_get_fd_by_id(prog_id)
        except bpf.BpfError:
            continue  # gone meanwhile
        try:
            if bpf.prog_info(fd).name != PROG_NAME:
                continue
        finally:
            os.close(fd)
        try:
            manifest = read_manifest(prog_id)
        except bpf.BpfError:
            continue
        if manifest is not None and manifest.owner == str(root.path):
            found.add(prog_id)
    return found


def _pinned_map_id(path: Path) -> int | None:
    try:
        fd = bpf.obj_get(str(path))
    except bpf.BpfError:
        return None
    try:
        return bpf.map_info(fd).id
    finally:
        os.close(fd)


def _tree(root: Path) -> set[str]:
    return {str((Path(d) / n).relative_to(root)) for d, dirs, files in os.walk(root) for n in dirs + files}


def _recovers(capsys, rig: Rig, sc: Scenario) -> None:
    """The next apply converges to the wanted chain and leaks nothing; the one after changes
    nothing. The map pins and empty folders are checked last, so that any other failure shows as itself."""
    code, doc = rig.apply(capsys)
    assert code in (0, 2) and not doc["failed"], doc
    running = rig.chain()
    assert (running[1] if running else ()) == sc.chain_after, f"runs {running}, wanted {sc.chain_after}"
    prog_id = running[0] if running else None
    deadline = time.monotonic() + scaled(2)
    while (ours := _our_programs(rig.root)) != ({prog_id} if prog_id else set()) and time.monotonic() < deadline:
        time.sleep(0.02)  # what only a dead process held may be freed a moment later
    assert ours == ({prog_id} if prog_id else set()), "programs of this root that no hook runs leaked"

    tree = _tree(rig.root.path)
    hook = rig.hook_path().relative_to(rig.root.path)
    hook_tree = {str(hook.parent), str(hook), str(hook / rig.backend.pin)} if prog_id else set()
    empty_folders = {str(hook.parent), str(hook)} - hook_tree
    stray = {p for p in tree if p.startswith("hooks/") and p != str(hook.parent.parent)} - hook_tree
    assert stray <= empty_folders and hook_tree <= tree, f"hook pins: {sorted(tree)}"
    unit_folders = {p.split("/")[1] for p in tree if p.startswith("units/")}
    assert unit_folders <= set(sc.after), f"stale unit folders: {sorted(unit_folders - set(sc.after))}"

    code, doc = rig.apply(capsys)
    assert code == 0 and all(h["outcome"] == "unchanged" for h in doc["hooks"]), doc

    maps = set(_map_ids(prog_id)) if prog_id else set()
    wanted = {f"units/{u}/{m}" for u, spec in sc.after.items() for m in spec.maps} | {f"units/{u}" for u in sc.after}
    pins = {p for p in tree if p.startswith("units/")}
    stale = {p for p in wanted if p.count("/") == 2 and _pinned_map_id(rig.root.path / p) not in maps}
    if pins != wanted or stale:
        raise MapPinsStale(f"not the running chain's maps: {sorted(stale)}; pins {sorted(pins)}, wanted {sorted(wanted)}")
    if stray:
        raise EmptyHookFolders(f"left: {sorted(stray)}")


def _map_ids(prog_id: int) -> tuple[int, ...]:
    fd = bpf.prog_get_fd_by_id(prog_id)
    try:
        return bpf.prog_info(fd).map_ids
    finally:
        os.close(fd)


def _set_up(capsys, rig: Rig, sc: Scenario) -> tuple[int, tuple[str, ...]] | None:
    """The scenario's first units applied and its second written: what the hook runs now."""
    rig.write_units(sc.before)
    if sc.before:
        code, doc = rig.apply(capsys)
        assert code == 2, doc
    running = rig.chain()
    assert (running[1] if running else ()) == sc.chain_before
    rig.write_units(sc.after)
    return running


def killed_apply(rig: Rig, fault: Fault, log: Path) -> int:
    """`apply` in a forked child with `fault` armed; the signal that ended it (0: none)."""
    argv = rig.argv()
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        code = 70
        try:
            sys.stdout = sys.stderr = open(log, "w")  # noqa: SIM115 (the forked child's output until it exits)
            with injected(rig.root.path, fault):
                code = main(argv)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            os._exit(code)
    deadline = time.monotonic() + scaled(30)
    while (ended := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"apply with {fault} hung: {log.read_text()}")
        time.sleep(0.002)
    return os.WTERMSIG(ended[1]) if os.WIFSIGNALED(ended[1]) else 0


# --- the tests --------------------------------------------------------------------------------------

BACKEND_PARAMS = [pytest.param(b, marks=[pytest.mark.needs(probe.TCX)] if b == "tcx" else []) for b in BACKENDS]


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_steps_taken(capsys, rig_for, backend, scenario):
    rig, sc = rig_for(backend), SCENARIOS[scenario]
    _set_up(capsys, rig, sc)
    taken: list[str] = []
    with injected(rig.root.path, taken=taken):
        code, doc = rig.apply(capsys)
    assert code == 2, doc
    assert tuple(taken) == STEPS_TAKEN[backend, scenario]
    _recovers(capsys, rig, sc)


@pytest.mark.parametrize(("backend", "scenario", "step", "when"), _kill_cases())
def test_kill_at_step(tmp_path, capsys, rig_for, backend, scenario, step, when):
    rig, sc, taken = rig_for(backend), SCENARIOS[scenario], STEPS_TAKEN[backend, scenario]
    before = _set_up(capsys, rig, sc)
    log = tmp_path / "killed.log"
    assert killed_apply(rig, Fault(step, when), log) == signal.SIGKILL, f"{step} never came: {log.read_text()}"

    now = rig.chain()
    if _point(taken, step, when) <= _unchanged_until(taken):
        assert now == before, "killed before anything changed, the hook runs what it ran"
    elif sc.chain_before and sc.chain_after:
        assert now is not None, "the hook is empty while units want it"
        assert now[1] in (sc.chain_before, sc.chain_after)
    _recovers(capsys, rig, sc)


@pytest.mark.parametrize(("backend", "scenario", "step"), _error_cases())
def test_error_at_step(capsys, rig_for, backend, scenario, step):
    rig, sc, taken = rig_for(backend), SCENARIOS[scenario], STEPS_TAKEN[backend, scenario]
    before = _set_up(capsys, rig, sc)
    with injected(rig.root.path, Fault(step, kill=False)):
        try:
            code, doc = rig.apply(capsys)
        except OSError as e:
            raise AssertionError(f"apply raised {e!r}") from e
    assert code == 1 and doc["failed"], doc
    if step == "unpin_unit":  # a unit's folder: no hook's error
        assert INJECTED in json.dumps(doc), doc
        return _recovers(capsys, rig, sc)
    hook = rig.hook_doc(doc)
    assert hook is not None and any(INJECTED in e for e in hook["errors"]), doc

    now = rig.chain()
    if taken.index(step) <= _swap(taken):
        assert now == before, "the hook runs what it ran before the failed step"
        assert hook["outcome"] == "failed"
    elif sc.chain_before and sc.chain_after:
        assert now is not None and now[1] in (sc.chain_before, sc.chain_after)
    _recovers(capsys, rig, sc)
