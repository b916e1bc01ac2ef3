"""Differential tests of the chain linker: a linked chain must behave exactly like its components
run one after another with BPF_PROG_TEST_RUN, applying ProceedOn in Python."""

from __future__ import annotations

import os
import secrets
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfunits.hooks import Hook
from bpfunits.hooks import probe
from bpfunits.sys import bpf
from bpfunits.state.bpffs import BPFFS, ensure_mounted, remove_tree
from bpfunits.load.load import load_object_program
from bpfunits.load.program import LoadedProgram
from bpfunits.linker import asm
from bpfunits.linker.component import Component, LinkError, component_of
from bpfunits.linker.layout import Mode
from bpfunits.linker.linker import link_chain
from bpfunits.linker.progtype import expected_attach_type_of, prog_type_of
from bpfunits.linker.counters import read_counters
from bpfunits.linker.manifest import read_manifest

pytestmark = pytest.mark.kernel

BPF_DIR = Path(__file__).resolve().parents[2] / "bpf"
XDP_OBJECTS = [
    "counter", "dropper", "rewriter", "globals", "subprog", "bpf_loop", "tailcall",
    "link_verdict_byte", "link_stack",
]  # fmt: skip
TC_OBJECTS = ["tc_actions", "link_tc_verdict_byte", "link_ldabs"]
NEEDS = {"bpf_loop": probe.BPF_LOOP}  # objects this kernel may be unable to load
# ... and objects that call helpers newer than 5.10 that bpfunits itself does not need.
HELPERS = {"link_stack": (189, "bpf_xdp_load_bytes, Linux 5.18")}


def _unloadable(name: str) -> str | None:
    """Why this kernel cannot load test object `name`, or None."""
    if name in NEEDS and not probe.features().has(NEEDS[name]):
        return probe.features().missing(NEEDS[name])
    if name in HELPERS and probe._helper(HELPERS[name][0])() is not None:
        return f"this kernel lacks {HELPERS[name][1]}"
    return None


def need(programs: dict, name: str) -> LoadedProgram:
    if name not in programs:
        pytest.skip(_unloadable(name) or f"{name} did not load")
    return programs[name]
XDP_CODES = sorted(Hook.XDP.verdicts.values())
TC_CODES = sorted(Hook.TC_INGRESS.verdicts.values())
# 60, or fewer under a profile that asks for fewer (the kernel matrix: --hypothesis-profile=matrix).
EXAMPLES = settings(max_examples=min(60, settings.default.max_examples), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def programs() -> Iterator[dict[str, LoadedProgram]]:
    """Every test object loaded once, its maps pinned (if at all) under a private bpffs folder."""
    ensure_mounted(BPFFS)
    root = BPFFS / f"bu-link-{secrets.token_hex(4)}"
    loaded: dict[str, LoadedProgram] = {}
    try:
        for name, hook in [(n, Hook.XDP) for n in XDP_OBJECTS] + [(n, Hook.TC_INGRESS) for n in TC_OBJECTS]:
            if _unloadable(name):
                continue  # chains are drawn from what loaded
            loaded[name] = load_object_program(BPF_DIR / f"{name}.bpf.o", hook, root / name)
        yield loaded
    finally:
        for program in loaded.values():
            program.close()
        remove_tree(root)


@dataclass(frozen=True)
class Outcome:
    verdict: int
    data: bytes
    seen: tuple[int, ...]  # per component: did it run (1) or not (0)
    codes: tuple[int | None, ...]  # per component: the code it returned (None: it did not run)


def standalone(hook: Hook, fds: list[int], proceed: list[frozenset[int]], frame: bytes) -> Outcome:
    """The reference: each component alone, in order, stopping where ProceedOn says so."""
    data, seen, returned = frame, [0] * len(fds), [None] * len(fds)
    for i, (fd, codes) in enumerate(zip(fds, proceed, strict=True)):
        run = bpf.prog_test_run(fd, data)
        seen[i], returned[i] = 1, _code(run.retval)
        data = run.data_out
        if _code(run.retval) not in codes:
            return Outcome(_code(run.retval), data, tuple(seen), tuple(returned))
    return Outcome(hook.chain_end_verdict, data, tuple(seen), tuple(returned))


def _code(retval: int) -> int:
    """A return value as the hook's verdict code (tc: signed 32 bits)."""
    return retval if retval < 0x80000000 else retval - (1 << 32)


def run_linked(fd: int, frame: bytes) -> tuple[int, bytes]:
    run = bpf.prog_test_run(fd, frame)
    return _code(run.retval), run.data_out


def check_chain(hook, programs, names, proceed, frames, *, force=None, counters=False):
    components = [component_of(f"{n}.{i}", programs[n], p) for i, (n, p) in enumerate(zip(names, proceed, strict=True))]
    return check_components(hook, components, [programs[n].fd for n in names], frames, force=force, counters=counters)


def check_components(hook, components, fds, frames, *, force=None, counters=False):
    """The linked chain of `components` against each run alone (loaded as `fds`): verdict,
    frame, and with counters what each component entered and returned."""
    proceed = [c.proceed_on for c in components]
    with link_chain(hook, components, counters=counters, force=force) as chain:
        fd = chain.load()
        try:
            seen = [0] * len(components)
            returned: list[Counter[int | None]] = [Counter() for _ in components]
            for frame in frames:
                want = standalone(hook, fds, proceed, frame)
                assert run_linked(fd, frame) == (want.verdict, want.data), ([c.name for c in components], proceed,
                                                                           frame.hex())
                seen = [a + b for a, b in zip(seen, want.seen, strict=True)]
                for count, code in zip(returned, want.codes, strict=True):
                    count[code] += 1
            if counters:
                counts = chain.counters.read()
                assert [c.entered for c in counts] == seen
                known = set(hook.verdicts.values())
                for c, count in zip(counts, returned, strict=True):
                    assert {k: v for k, v in c.verdicts.items() if v} == {k: v for k, v in count.items() if k in known}
                    assert c.unknown == sum(v for k, v in count.items() if k is not None and k not in known)
        finally:
            os.close(fd)
    return chain


def frames_strategy(min_size: int = 14) -> st.SearchStrategy[bytes]:
    @st.composite
    def frame(draw) -> bytes:
        raw = bytearray(draw(st.binary(min_size=min_size, max_size=260)))
        if len(raw) >= 14 and draw(st.booleans()):
            raw[12:14] = b"\x88\xb5"  # the dropper's pattern
        return bytes(raw)

    return st.lists(frame(), min_size=1, max_size=8)


proceed_xdp = st.frozensets(st.sampled_from(XDP_CODES), max_size=3)
proceed_tc = st.frozensets(st.sampled_from(TC_CODES), max_size=4)


@EXAMPLES
@given(
    data=st.data(),
    frames=frames_strategy(),
    force=st.sampled_from([None, Mode.CALL]),
    counters=st.booleans(),
)
@pytest.mark.matrix
def test_xdp_chain_matches_components_run_one_after_another(programs, data, frames, force, counters):
    loaded = [n for n in XDP_OBJECTS if n in programs]
    chain = data.draw(st.lists(st.tuples(st.sampled_from(loaded), proceed_xdp), min_size=1, max_size=8), "chain")
    names, proceed = zip(*chain, strict=True)
    check_chain(Hook.XDP, programs, list(names), list(proceed), frames, force=force, counters=counters)


@EXAMPLES
@given(
    chain=st.lists(st.tuples(st.sampled_from(TC_OBJECTS), proceed_tc), min_size=1, max_size=8),
    frames=frames_strategy(),
    force=st.sampled_from([None, Mode.CALL]),
    counters=st.booleans(),
)
@pytest.mark.matrix
def test_tc_chain_matches_components_run_one_after_another(programs, chain, frames, force, counters):
    names, proceed = zip(*chain, strict=True)
    check_chain(Hook.TC_INGRESS, programs, list(names), list(proceed), frames, force=force, counters=counters)


POOL_100 = ["counter", "rewriter", "globals", "subprog", "bpf_loop", "link_verdict_byte", "tailcall"]


@pytest.mark.parametrize("force", [None, Mode.CALL])
@pytest.mark.matrix
def test_hundred_components_load_and_match(programs, force):
    pool = [n for n in POOL_100 if n in programs]
    names = [pool[i % len(pool)] for i in range(100)]
    proceed = [frozenset(XDP_CODES) - {1}] * 100  # everything but XDP_DROP goes on
    frames = [bytes([n]) * 64 for n in (0, 1, 7, 200)]
    chain = check_chain(Hook.XDP, programs, names, proceed, frames, force=force, counters=True)
    assert len(chain.placements) == 100


def looks_at_byte(hook: Hook, byte: int, ends: int) -> bytes:
    """`r0 = go on; if the frame is too short, or frame[14] != byte: return r0; return ends`: the
    verdict on every way into its exit is known from the code (flow.py)."""
    data, end = (76, 80) if hook.is_tc else (0, 4)
    return asm.encode([
        asm.Insn(asm.LDX | asm.MEM | asm.W, asm.R2, asm.R1, data),
        asm.Insn(asm.LDX | asm.MEM | asm.W, asm.R3, asm.R1, end),
        asm.mov64_imm(asm.R0, hook.chain_end_verdict),
        asm.mov64_reg(asm.R4, asm.R2),
        asm.add64_imm(asm.R4, 15),
        asm.Insn(asm.JMP | asm.JGT | asm.X, asm.R4, asm.R3, 3),
        asm.Insn(asm.LDX | asm.MEM | asm.B, asm.R4, asm.R2, 14),
        asm.jmp_imm(asm.JNE, asm.R4, byte, 1),
        asm.mov64_imm(asm.R0, ends),
        asm.exit_(),
    ])  # fmt: skip


@pytest.mark.parametrize("hook", [Hook.XDP, Hook.TC_INGRESS])
@pytest.mark.parametrize("counters", [False, True])
@pytest.mark.matrix
def test_verdicts_known_from_the_code_go_straight_where_they_lead(hook, counters):
    # Ending verdicts, a second proceed verdict (counted on its way on), a verdict that goes on
    # only from the last one; a short frame takes the other known way.
    go_on = hook.chain_end_verdict
    ends, other = (hook.verdicts["shot"], hook.verdicts["ok"]) if hook.is_tc else (hook.verdicts["drop"],
                                                                                   hook.verdicts["tx"])
    specs = [(0xFF, ends, {go_on}), (0xFE, other, {go_on, other}), (0xFD, ends, {go_on}), (0xFC, other, {go_on})]
    components = [Component(f"k{i}", looks_at_byte(hook, b, e), frozenset(p)) for i, (b, e, p) in enumerate(specs)]
    fds = [bpf.prog_load(prog_type_of(hook), c.insns, expected_attach_type=expected_attach_type_of(hook))
           for c in components]
    try:
        frames = [bytes(14) + bytes([b]) + bytes(49) for b in (0, 0xFF, 0xFE, 0xFD, 0xFC, 0xFC)] + [bytes(14)]
        chain = check_components(hook, components, fds, frames, counters=counters)
    finally:
        for fd in fds:
            os.close(fd)
    compares = [i for i in chain.assembly.insns if i.cls == asm.JMP32 and i.dst == asm.R0]
    # Without counters no verdict is tested; with them, k1's two ways on (JEQ, JNE) and the last
    # one's, which are counted on their way.
    assert len(compares) == (3 if counters else 0)


@pytest.mark.matrix
def test_counters_count_what_each_component_saw(programs):
    # verdict_byte returns byte 15 % 6 and increments it: 0 aborted, 1 drop, 2 pass, 3 tx, 4 redirect, 5 unknown
    names = ["link_verdict_byte"] * 3
    proceed = [frozenset({0, 2, 3, 4})] * 3  # aborted, pass, tx, redirect go on
    components = [component_of(f"v{i}", programs[n], p) for i, (n, p) in enumerate(zip(names, proceed, strict=True))]
    with link_chain(Hook.XDP, components, counters=True) as chain:
        fd = chain.load()
        try:
            for first in (0, 1, 2, 5, 4):
                frame = bytearray(32)
                frame[15] = first
                run_linked(fd, bytes(frame))
        finally:
            os.close(fd)
        counts = chain.counters.read()
    # first=0: 0,1 -> stops at v1 (drop). first=1: drop at v0. first=2: 2,3,4 all go on.
    # first=5: unknown at v0. first=4: 4 then 5 (unknown) at v1.
    assert [c.entered for c in counts] == [5, 3, 1]
    assert counts[0].verdicts == {0: 1, 1: 1, 2: 1, 3: 0, 4: 1} and counts[0].unknown == 1
    assert counts[1].verdicts == {0: 0, 1: 1, 2: 0, 3: 1, 4: 0} and counts[1].unknown == 1
    assert counts[2].verdicts == {0: 0, 1: 0, 2: 0, 3: 0, 4: 1} and counts[2].unknown == 0


@pytest.mark.parametrize(("proceed", "lines"), [({"pass"}, 1), ({"pass", "tx"}, 4)])
@pytest.mark.matrix
def test_a_32_component_chain_counts_each_frame_in_few_cache_lines(proceed, lines):
    # Every component passes. With one proceed verdict only the last component's count is
    # written (the others' are derived); with two, each component writes its pass slot, and
    # those 32 slots are adjacent.
    pass_ = Hook.XDP.verdicts["pass"]
    codes = frozenset(Hook.XDP.verdicts[v] for v in proceed)
    trivial = asm.encode([asm.mov64_imm(asm.R0, pass_), asm.exit_()])
    components = [Component(f"c{i}", trivial, codes) for i in range(32)]
    with link_chain(Hook.XDP, components, counters=True) as chain:
        fd = chain.load()
        try:
            for _ in range(10):
                run_linked(fd, bytes(64))
        finally:
            os.close(fd)
        layout = chain.counters.layout
        values = bpf.map_lookup_percpu(layout.map_fd, bytes(4), layout.value_size) or []
        touched = {n * 8 // 64 for v in values for n, w in enumerate(struct.unpack(f"<{len(v) // 8}Q", v)) if w}
        assert len(touched) == lines
        assert all((c.entered, c.verdicts[pass_]) == (10, 10) for c in chain.counters.read())


def test_manifest_is_read_back_from_the_program_id(programs):
    components = [
        component_of("a.unit", programs["counter"], frozenset({2})),
        component_of("b.unit", programs["tailcall"], frozenset({2, 3})),
    ]
    with link_chain(Hook.XDP, components, manifest="gen-7") as chain:
        fd = chain.load()
        try:
            manifest = read_manifest(bpf.prog_info(fd).id)
        finally:
            os.close(fd)
    assert manifest is not None and manifest.version == "gen-7" and manifest.hook == "xdp"
    assert [(e.unit, e.sha256, e.tag, e.proceed_on, e.mode) for e in manifest.components] == [
        ("a.unit", programs["counter"].sha256, programs["counter"].tag, (2,), "inline"),
        ("b.unit", programs["tailcall"].sha256, programs["tailcall"].tag, (2, 3), "call"),
    ]


def test_counters_are_read_back_from_the_program_id(programs):
    components = [component_of(f"u{i}", programs["link_verdict_byte"], frozenset({0, 2, 3})) for i in range(3)]
    with link_chain(Hook.XDP, components, counters=True, manifest="1") as chain:
        fd = chain.load()
        try:
            for first in range(6):
                run_linked(fd, bytes(15) + bytes([first]))
            prog_id = bpf.prog_info(fd).id
            assert read_counters(prog_id) == chain.counters.read()
            assert [c.name for c in read_counters(prog_id)] == ["u0", "u1", "u2"]
        finally:
            os.close(fd)
    assert read_counters(programs["counter"].id) is None


@pytest.mark.matrix
def test_identical_chains_are_linked_once_each_with_its_own_maps(programs):
    # A glob unit's chains on many interfaces: linked once, loaded as often, and each counts
    # only its own frames and carries a manifest of its own.
    components = [component_of(f"u{i}", programs["link_verdict_byte"], frozenset({0, 2, 3})) for i in range(3)]
    done: dict = {}
    with (link_chain(Hook.XDP, components, counters=True, manifest="1", done=done) as first,
          link_chain(Hook.XDP, components, counters=True, manifest="1", done=done) as second):
        assert len(done) == 1
        a, b = first.assembly, second.assembly
        differ = [pc for pc, (x, y) in enumerate(zip(a.insns, b.insns, strict=True)) if x != y]
        assert differ == sorted([a.counters_at, a.manifest_at])
        fds = [first.load(), second.load()]
        try:
            for frames, fd in zip((2, 5), fds, strict=True):
                for n in range(frames):
                    run_linked(fd, bytes(15) + bytes([n]))
            ids = [bpf.prog_info(fd).id for fd in fds]
            assert [read_counters(i)[0].entered for i in ids] == [2, 5]
            assert read_manifest(ids[0]) == read_manifest(ids[1]) is not None
            maps = [set(bpf.prog_info(fd).map_ids) for fd in fds]
            assert len(maps[0] ^ maps[1]) == 4  # the counter and manifest maps of each
        finally:
            for fd in fds:
                os.close(fd)
    with link_chain(Hook.XDP, components[:2], counters=True, manifest="1", done=done):
        assert len(done) == 2  # other components: linked anew


def test_manifest_map_is_frozen(programs):
    components = [component_of("a", programs["counter"], frozenset({2}))]
    with link_chain(Hook.XDP, components, manifest="1") as chain, pytest.raises(bpf.BpfError):
        bpf.map_update(chain.manifest_fd, bytes(4), b"x" * bpf.map_info(chain.manifest_fd).value_size)


def test_program_without_manifest_reads_as_none(programs):
    assert read_manifest(programs["counter"].id) is None


def test_tail_calling_component_is_refused_where_the_kernel_cannot_return_from_its_tail_call(programs):
    components = [component_of("tc.unit", programs["tailcall"], frozenset({2})),
                  component_of("c.unit", programs["counter"], frozenset({2}))]
    with pytest.raises(LinkError, match="unit tc.unit makes tail calls, which cannot run in a chain here: why"):
        link_chain(Hook.XDP, components, no_tail_calls="why")
    link_chain(Hook.XDP, components[1:], no_tail_calls="why").close()  # the others link as ever


def test_tail_calling_component_is_called_not_inlined(programs):
    components = [component_of("tc.unit", programs["tailcall"], frozenset({2}))]
    with link_chain(Hook.XDP, components) as chain:
        assert chain.placements[0].mode is Mode.CALL and "tail call" in chain.placements[0].reason
    with pytest.raises(LinkError, match="unit tc.unit cannot be inlined: it makes tail calls"):
        link_chain(Hook.XDP, components, force=Mode.INLINE)


def test_components_after_one_that_never_proceeds_are_left_out(programs):
    components = [
        component_of("a", programs["counter"], frozenset()),
        component_of("b", programs["rewriter"], frozenset({2})),
    ]
    with link_chain(Hook.XDP, components) as chain:
        assert chain.placements[1].mode is Mode.UNREACHABLE and "unit a" in chain.placements[1].reason
        fd = chain.load()
        try:
            assert run_linked(fd, bytes(32)) == (2, bytes(32))  # the rewriter did not run
        finally:
            os.close(fd)


def test_deep_stack_component_is_inlined_with_the_context_below_its_stack(programs):
    components = [
        component_of("deep", need(programs, "link_stack"), frozenset({2})),
        component_of("next", programs["link_verdict_byte"], frozenset({2})),
    ]
    with link_chain(Hook.XDP, components) as chain:
        assert [p.mode for p in chain.placements] == [Mode.INLINE, Mode.INLINE]
        assert chain.assembly.insns[0].off == -208  # 200 bytes of buffer, then the context
    frames = [bytes(range(256)), bytes(256), bytes([1]) + bytes(255), bytes(100)]
    check_chain(Hook.XDP, programs, ["link_stack", "link_verdict_byte"], [frozenset({2})] * 2, frames)


def test_packet_load_component_is_called_not_inlined(programs):
    components = [component_of("abs", programs["link_ldabs"], frozenset({-1}))]
    with link_chain(Hook.TC_INGRESS, components) as chain:
        assert chain.placements[0].mode is Mode.CALL and "LD_ABS" in chain.placements[0].reason
    # Too short for the LD_ABS load (the program returns 0 there), odd and even byte 14.
    frames = [bytes(14), bytes(15), bytes(14) + b"\x01" + bytes(20), bytes(40)]
    names = ["link_ldabs", "tc_actions", "link_ldabs"]
    check_chain(Hook.TC_INGRESS, programs, names, [frozenset({-1, 0})] * 3, frames)


@pytest.fixture
def filled_jump_table(programs) -> Iterator[None]:
    """The tailcall component's program array holding a program that returns XDP_TX."""
    target = bpf.prog_load(bpf.ProgType.XDP, asm.encode([asm.mov64_imm(asm.R0, 3), asm.exit_()]),
                           expected_attach_type=bpf.AttachType.XDP)
    table = programs["tailcall"].maps["jmp_table"].fd
    try:
        bpf.map_update(table, bytes(4), target.to_bytes(4, "little"))
        yield
    finally:
        bpf.map_delete(table, bytes(4))
        os.close(target)


@pytest.mark.matrix
@pytest.mark.needs(probe.SUBPROG_TAIL_CALL_RETURNS)
def test_successful_tail_call_ends_only_its_component(programs, filled_jump_table):
    # Standalone the tail-called program's XDP_TX is the component's verdict; with TX in its
    # ProceedOn the next component must still run.
    names = ["tailcall", "link_verdict_byte", "tailcall"]
    proceed = [frozenset({3}), frozenset({0, 2, 3, 4}), frozenset({2})]
    frames = [bytes([n]) * 32 for n in range(6)]
    for force in (None, Mode.CALL):
        check_chain(Hook.XDP, programs, names, proceed, frames, force=force, counters=True)


def test_component_the_verifier_refuses_alone_is_named():
    # r0 = *(u32 *)(r10 + 0): outside the stack
    bad = asm.encode([asm.Insn(asm.LDX | asm.MEM | asm.W, 0, 10, 0), asm.exit_()])
    with pytest.raises(LinkError, match="unit broken: the verifier refuses it alone"):
        link_chain(Hook.XDP, [Component("broken", bad, frozenset({2}))])


def _map_user(name: str, fds: list[int]) -> Component:
    """A component that loads the maps behind `fds` and returns XDP_PASS."""
    loads = [i for fd in fds for i in asm.ld_map_fd(1, fd)]
    insns = asm.encode([*loads, asm.mov64_imm(0, Hook.XDP.verdicts["pass"]), asm.exit_()])
    return Component(name, insns, frozenset({Hook.XDP.verdicts["pass"]}))


def _map_users(count: int, maps_each: int) -> tuple[list[Component], list[int]]:
    """`count` components that each load `maps_each` maps of their own."""
    fds = [bpf.map_create(bpf.MapType.ARRAY, 4, 8, 1) for _ in range(count * maps_each)]
    return [_map_user(f"m{n}", fds[n * maps_each : (n + 1) * maps_each]) for n in range(count)], fds


@pytest.mark.parametrize(
    ("count", "own", "fits"),
    [(32, {}, True), (31, {"counters": True, "manifest": "v"}, True), (32, {"counters": True}, False), (33, {}, False)],
)
def test_chain_over_the_kernels_map_limit_is_refused_naming_each_units_share(count, own, fits):
    # 2 maps per unit: 32 units use exactly the kernel's 64, and the chain's own maps count too.
    components, fds = _map_users(count, 2)
    try:
        if fits:
            with link_chain(Hook.XDP, components, **own) as linked:
                os.close(linked.load())
        else:
            with pytest.raises(LinkError, match=r"would use (65|66) maps, and the kernel allows 64 .*m0 2, m1 2"):
                link_chain(Hook.XDP, components, **own)
    finally:
        for fd in fds:
            os.close(fd)


def test_units_sharing_a_map_count_it_once():
    # Three units reach the same 64 maps, each through fds of its own (as separate loads of a
    # pinned map would): 64 maps to the kernel, not 192.
    components, fds = _map_users(1, 64)
    dups = [[os.dup(fd) for fd in fds] for _ in range(2)]
    components += [_map_user(f"d{n}", d) for n, d in enumerate(dups)]
    try:
        with link_chain(Hook.XDP, components) as linked:
            os.close(linked.load())
    finally:
        for fd in fds + dups[0] + dups[1]:
            os.close(fd)


def test_no_components_is_refused():
    with pytest.raises(LinkError, match="no components"):
        link_chain(Hook.XDP, [])


def test_component_whose_stack_leaves_no_room_is_called_or_refused(programs):
    # *(u64 *)(r10 - 504) = 2; r0 = *(u64 *)(r10 - 504); exit: XDP_PASS from the bottom of the stack
    deep = asm.encode([
        asm.Insn(asm.ST | asm.MEM | asm.DW, 10, 0, -504, 2), asm.ldx_dw(0, 10, -504), asm.exit_(),
    ])  # fmt: skip
    components = [
        component_of("first", programs["link_verdict_byte"], frozenset({0, 2})),
        Component("deep", deep, frozenset({2})),
        component_of("last", programs["link_verdict_byte"], frozenset({2})),
    ]
    # Beside inlined components the chain keeps its context on the stack: no room left.
    with pytest.raises(LinkError, match="unit deep: its stack leaves no room for the chain's own 8 bytes"):
        link_chain(Hook.XDP, components)
    with pytest.raises(LinkError, match="unit deep cannot be inlined: its stack \\(504 bytes\\)"):
        link_chain(Hook.XDP, components, force=Mode.INLINE)
    # All called, the context stays in r6 and the dispatcher needs no stack.
    with link_chain(Hook.XDP, components, force=Mode.CALL) as chain:
        assert chain.placements[1].mode is Mode.CALL
        fd = chain.load()
        try:
            for first, want in [(0, (1, 2)), (2, (3, 2)), (1, (1, 1))]:
                frame = bytearray(16)
                frame[15] = first
                verdict, data = run_linked(fd, bytes(frame))
                assert (verdict, data[15] - first) == want
        finally:
            os.close(fd)
    with link_chain(Hook.XDP, components[1:2]) as chain:
        assert chain.placements[0].mode is Mode.CALL and "504 bytes" in chain.placements[0].reason


def test_chain_longer_than_16_bit_jumps_loads_and_runs():
    # 12000 instructions per component: the chain's main function passes 32767 instructions.
    body = [asm.mov64_imm(asm.R0, 1)] * 11999
    components = [
        Component(f"long{i}", asm.encode([*body, asm.mov64_imm(asm.R0, verdict), asm.exit_()]), frozenset({2}))
        for i, verdict in enumerate([2, 2, 3])
    ]
    with link_chain(Hook.XDP, components) as chain:
        assert len(chain.assembly.insns) > 36000
        fd = chain.load()
        try:
            assert run_linked(fd, bytes(32)) == (3, bytes(32))
        finally:
            os.close(fd)


def test_tail_calls_below_too_much_stack_are_refused(programs):
    def deep(depth: int) -> Component:
        insns = [asm.Insn(asm.ST | asm.MEM | asm.DW, 10, 0, -depth, 2), asm.ldx_dw(0, 10, -depth), asm.exit_()]
        return Component(f"deep{depth}", asm.encode(insns), frozenset({2}))

    tail = component_of("tail", programs["tailcall"], frozenset({2}))
    # The chain's frame: the deepest inlined stack, then 8 bytes of context and 8 for the tail
    # call's verdict (the kernel's limit for frames below a tail call is < 256 bytes, each frame
    # rounded up to 16).
    with link_chain(Hook.XDP, [deep(224), tail]) as chain:
        os.close(chain.load())
    with pytest.raises(LinkError, match="unit tail: it makes tail calls.*frame takes 248"):
        link_chain(Hook.XDP, [deep(232), tail])
