"""The node collector's exposition, byte for byte, for a fixed state of real chains: whatever makes
a scrape cheaper (cached labels and samples, fewer reads) must leave it exactly as it was."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from bpfunits.hooks import Hook
from bpfunits.hooks.observe import Attached, Backend
from bpfunits.linker.component import component_of
from bpfunits.linker.counters import ComponentCounts, write_base
from bpfunits.linker.linker import link_chain
from bpfunits.load.load import load_object_program
from bpfunits.metrics.node import NodeMetrics
from bpfunits.order.graph import HookKey
from bpfunits.plan.model import Action, ChainMember, ChainState, HookPlan
from bpfunits.reconcile.desired import build_id
from bpfunits.reconcile.engine import HookResult, Outcome, Result
from bpfunits.reconcile.memory import Left, Memory
from bpfunits.state.bpffs import BPFFS, ensure_mounted, remove_tree
from bpfunits.sys import bpf

pytestmark = pytest.mark.kernel
BPF = Path(__file__).resolve().parents[2] / "bpf"
ODD = 'bu"x\\y'  # an interface name may hold what exposition escapes

EXPECTED = r"""# HELP bpfunits_unit_packets_total Packets that entered the unit on the hook
# TYPE bpfunits_unit_packets_total counter
bpfunits_unit_packets_total{hook="xdp",interface="bu\"x\\y",unit="v0"} 5.0
bpfunits_unit_packets_total{hook="xdp",interface="bu\"x\\y",unit="v1"} 3.0
bpfunits_unit_packets_total{hook="tc-ingress",interface="bu\"x\\y",unit="t1"} 4.0
bpfunits_unit_packets_total{hook="tc-ingress",interface="bu\"x\\y",unit="t2"} 2.0
bpfunits_unit_packets_total{hook="xdp",interface="bu2",unit="c0"} 4.0
bpfunits_unit_packets_total{hook="xdp",interface="bu2",unit="c1"} 9.0
# HELP bpfunits_unit_verdicts_total Packets for which the unit returned the verdict
# TYPE bpfunits_unit_verdicts_total counter
bpfunits_unit_verdicts_total{hook="xdp",interface="bu\"x\\y",unit="v0",verdict="aborted"} 1.0
bpfunits_unit_verdicts_total{hook="xdp",interface="bu\"x\\y",unit="v0",verdict="drop"} 1.0
bpfunits_unit_verdicts_total{hook="xdp",interface="bu\"x\\y",unit="v0",verdict="pass"} 1.0
bpfunits_unit_verdicts_total{hook="xdp",interface="bu\"x\\y",unit="v0",verdict="redirect"} 1.0
bpfunits_unit_verdicts_total{hook="xdp",interface="bu\"x\\y",unit="v0",verdict="other"} 1.0
bpfunits_unit_verdicts_total{hook="xdp",interface="bu\"x\\y",unit="v1",verdict="drop"} 1.0
bpfunits_unit_verdicts_total{hook="xdp",interface="bu\"x\\y",unit="v1",verdict="tx"} 1.0
bpfunits_unit_verdicts_total{hook="xdp",interface="bu\"x\\y",unit="v1",verdict="other"} 1.0
bpfunits_unit_verdicts_total{hook="tc-ingress",interface="bu\"x\\y",unit="t1",verdict="next"} 1.0
bpfunits_unit_verdicts_total{hook="tc-ingress",interface="bu\"x\\y",unit="t1",verdict="ok"} 1.0
bpfunits_unit_verdicts_total{hook="tc-ingress",interface="bu\"x\\y",unit="t1",verdict="shot"} 2.0
bpfunits_unit_verdicts_total{hook="tc-ingress",interface="bu\"x\\y",unit="t2",verdict="next"} 1.0
bpfunits_unit_verdicts_total{hook="tc-ingress",interface="bu\"x\\y",unit="t2",verdict="ok"} 1.0
bpfunits_unit_verdicts_total{hook="xdp",interface="bu2",unit="c0",verdict="drop"} 1.0
bpfunits_unit_verdicts_total{hook="xdp",interface="bu2",unit="c0",verdict="pass"} 2.0
bpfunits_unit_verdicts_total{hook="xdp",interface="bu2",unit="c0",verdict="redirect"} 1.0
bpfunits_unit_verdicts_total{hook="xdp",interface="bu2",unit="c1",verdict="drop"} 5.0
bpfunits_unit_verdicts_total{hook="xdp",interface="bu2",unit="c1",verdict="tx"} 2.0
bpfunits_unit_verdicts_total{hook="xdp",interface="bu2",unit="c1",verdict="other"} 2.0
# HELP bpfunits_chain_info bpfunits' linked program on the hook
# TYPE bpfunits_chain_info gauge
bpfunits_chain_info{backend="xdp-link",hook="xdp",interface="bu\"x\\y",mode="",prog_id="XDP_ID",tag="XDP_TAG"} 1.0
bpfunits_chain_info{backend="tcx",hook="tc-ingress",interface="bu\"x\\y",mode="",prog_id="TC_ID",tag="TC_TAG"} 1.0
bpfunits_chain_info{backend="xdp-link",hook="xdp",interface="bu2",mode="",prog_id="D_ID",tag="D_TAG"} 1.0
bpfunits_chain_info{backend="xdp-netlink",hook="xdp",interface="gone0",mode="generic",prog_id="GONE_ID",tag="0123456789abcdef"} 1.0
# HELP bpfunits_chain_units Units in the chain running on the hook
# TYPE bpfunits_chain_units gauge
bpfunits_chain_units{hook="xdp",interface="bu\"x\\y"} 2.0
bpfunits_chain_units{hook="tc-ingress",interface="bu\"x\\y"} 2.0
bpfunits_chain_units{hook="xdp",interface="bu2"} 2.0
bpfunits_chain_units{hook="xdp",interface="gone0"} 1.0
# HELP bpfunits_hooks Hooks by state: unchanged (runs its chain as wanted), blocked, failed, foreign (runs only others' programs)
# TYPE bpfunits_hooks gauge
bpfunits_hooks{state="unchanged"} 4.0
bpfunits_hooks{state="blocked"} 1.0
bpfunits_hooks{state="failed"} 0.0
bpfunits_hooks{state="foreign"} 1.0
# HELP bpfunits_unit_errors Units whose files or programs have an error
# TYPE bpfunits_unit_errors gauge
bpfunits_unit_errors{unit="bad"} 1.0
# HELP bpfunits_kernel_operations_total Attaches, atomic replaces and detaches
# TYPE bpfunits_kernel_operations_total counter
bpfunits_kernel_operations_total{kind="attach"} 0.0
bpfunits_kernel_operations_total{kind="replace"} 1.0
bpfunits_kernel_operations_total{kind="detach"} 0.0
# HELP bpfunits_counter_carry_failures_total Swaps after which the units' counts could not be carried over to the new chain (logged as warnings)
# TYPE bpfunits_counter_carry_failures_total counter
bpfunits_counter_carry_failures_total 0.0
"""


def chain_result(stack: ExitStack, key: HookKey, obj: str, name: str | None, units: list[str],
                 proceed: frozenset[int], frames: list[bytes], backend: Backend, action: Action,
                 carried: dict[str, ComponentCounts] | None = None) -> HookResult:
    """A chain of `units` (each program `name` of `obj`) loaded for the hook, `frames` run
    through it, `carried` counts written to it, as a reconcile's result would name it."""
    pins = BPFFS / f"bu-expo-{secrets.token_hex(4)}"
    stack.callback(remove_tree, pins)
    loaded = load_object_program(BPF / obj, key.hook, pins, name=name)
    stack.callback(loaded.close)
    with link_chain(key.hook, [component_of(u, loaded, proceed) for u in units], counters=True,
                    manifest=build_id(True)) as linked:
        fd = linked.load()
        if carried and linked.counters:
            write_base(linked.counters.layout, units, carried)
    stack.callback(os.close, fd)
    for data in frames:
        bpf.prog_test_run(fd, data)
    info = bpf.prog_info(fd)
    state = ChainState(tuple(ChainMember(u, "0" * 64, loaded.tag, tuple(sorted(proceed))) for u in units),
                       build_id(True))
    attached = Attached(info.id, info.name, info.tag, None, backend, None, ours=True)
    plan = HookPlan(key, action, state, None if action is Action.REPLACE else state)
    if action is Action.REPLACE:
        return HookResult(plan, Outcome.APPLIED, prog_id=info.id, attached=attached, ordered=tuple(units))
    return HookResult(plan, Outcome.UNCHANGED, prog_id=info.id, running=attached, ordered=tuple(units))


def byte_at(at: int, value: int) -> bytes:
    frame = bytearray(64)
    frame[at] = value & 0xFF
    return bytes(frame)


@pytest.fixture
def state() -> Iterator[tuple[Result, Memory, dict[str, str]]]:
    ensure_mounted(BPFFS)
    with ExitStack() as stack:
        xdp = XDP = Hook.XDP
        # link_verdict_byte returns byte 15 % 6 and adds 1 to it: aborted, drop, pass, tx, redirect, other (5).
        a = chain_result(stack, HookKey(ODD, xdp), "link_verdict_byte.bpf.o", None, ["v0", "v1"],
                         frozenset({0, 2, 3, 4}), [byte_at(15, b) for b in (0, 1, 2, 5, 4)], Backend.XDP_LINK,
                         Action.REPLACE)
        # tc_actions returns byte 14 as a signed byte: ok (0) and next (-1) go on, shot (2) stops.
        t = chain_result(stack, HookKey(ODD, Hook.TC_INGRESS), "tc_actions.bpf.o", None, ["t1", "t2"],
                         frozenset({-1, 0}), [byte_at(14, b) for b in (0, 2, 2, -1)], Backend.TCX, Action.UNCHANGED)
        # Only pass goes on: c0's pass count is derived (what entered c1); c1 has counts carried over.
        d = chain_result(stack, HookKey("bu2", xdp), "link_verdict_byte.bpf.o", None, ["c0", "c1"], frozenset({2}),
                         [byte_at(15, b) for b in (2, 2, 1, 4)], Backend.XDP_LINK, Action.UNCHANGED,
                         carried={"c1": ComponentCounts("c1", {1: 5}, 2)})
        gone_key = HookKey("gone0", XDP)
        gone_state = ChainState((ChainMember("g", "0" * 64, "0123456789abcdef", (2,)),), build_id(True))
        gone_id = max(bpf.prog_ids()) + 1_000_000  # no such program (any more)
        gone = HookResult(HookPlan(gone_key, Action.UNCHANGED, gone_state, gone_state), Outcome.UNCHANGED,
                          prog_id=gone_id, running=Attached(gone_id, "bpfunits_chain", "0123456789abcdef", None,
                                                            Backend.XDP_NETLINK, "generic", ours=True))
        blocked = HookResult(HookPlan(HookKey("blk0", XDP), Action.BLOCKED, None, None, reasons=("cycle",)),
                             Outcome.BLOCKED, ("cycle",))
        foreign = HookResult(HookPlan(HookKey("frn0", XDP), Action.UNCHANGED, None, None), Outcome.UNCHANGED,
                             foreign=(Attached(7, "theirs", "f" * 16, None, Backend.XDP_NETLINK, "driver", ours=False),))
        hooks = [a, t, d, gone, blocked, foreign]
        memory = Memory(hooks={h.key: Left(None, frozenset(), h.ordered) for h in hooks})
        ids = {"XDP_ID": str(a.prog_id), "XDP_TAG": a.attached.tag if a.attached else "",
               "TC_ID": str(t.prog_id), "TC_TAG": t.running.tag if t.running else "", "GONE_ID": str(gone_id),
               "D_ID": str(d.prog_id), "D_TAG": d.running.tag if d.running else ""}
        yield Result(hooks=hooks, unit_errors={"bad": "no such file"}), memory, ids


def test_the_node_exposition_is_exactly_as_it_was(state):
    result, memory, ids = state
    expected = EXPECTED
    for placeholder, value in ids.items():
        expected = expected.replace(placeholder, value)
    metrics = NodeMetrics()
    try:
        metrics.update(result, memory, ["v0", "v1", "t1", "t2", "c0", "c1", "bad"])
        registry = CollectorRegistry(auto_describe=False)
        registry.register(metrics)
        for _ in range(2):  # the first scrape opens the counters, the next reuse what it kept
            assert generate_latest(registry).decode() == expected
        # What Prometheus asks for, the same samples.
        openmetrics = generate_openmetrics(registry).decode()
        assert openmetrics.count("\n") == expected.count("\n") + 1 and openmetrics.endswith("# EOF\n")
    finally:
        metrics.close()
