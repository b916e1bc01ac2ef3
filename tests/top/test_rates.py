"""`bpfunits top`'s arithmetic: rates between two readings, and the order of the rows."""

from bpfunits.hooks import Hook
from bpfunits.linker.counters import ComponentCounts
from bpfunits.order.graph import HookKey
from bpfunits.top.rates import rows, table

XDP = HookKey("eth0", Hook.XDP)
TC = HookKey("eth0", Hook.TC_INGRESS)


def xdp(name: str, passed: int, dropped: int, aborted: int = 0) -> ComponentCounts:
    return ComponentCounts(name, {0: aborted, 1: dropped, 2: passed, 3: 0, 4: 0}, 0)


def test_rates_order_and_new_units():
    before = {XDP: [xdp("a", 100, 0), xdp("b", 50, 50)], TC: [ComponentCounts("t", {2: 10, 0: 0}, 0)]}
    after = {XDP: [xdp("a", 300, 0), xdp("b", 150, 140, aborted=10), xdp("new", 5, 0)],
             TC: [ComponentCounts("t", {2: 30, 0: 0}, 0)]}
    found = rows(before, after, 2.0)
    assert [(r.unit, r.pps, r.dps) for r in found] == [
        ("b", 100.0, 50.0), ("a", 100.0, 0.0), ("t", 10.0, 10.0), ("new", 0.0, 0.0)]
    assert (found[0].packets, found[0].drops) == (300, 150), "drop and aborted are drops on XDP; shot on tc"
    lines = table(found, 40)
    assert lines[0].startswith("INTERFACE") and all(len(line) <= 40 for line in lines)
