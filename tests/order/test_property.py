"""Random DAGs of Before/After always give a chain that respects every edge, whatever the input order."""

from hypothesis import given, settings
from hypothesis import strategies as st

from bpfunits.hooks import Hook
from bpfunits.order.graph import HookKey, order_hook
from bpfunits.units.model import Program, Unit
from pathlib import Path


@st.composite
def dags(draw):
    n = draw(st.integers(1, 25))
    names = draw(st.lists(st.text("abcdefghij-0123456789", min_size=1, max_size=6).filter(lambda s: s[0].isalnum()),
                          min_size=n, max_size=n, unique=True))
    # Edges only from a lower to a higher index of a hidden permutation: acyclic by construction.
    rank = draw(st.permutations(names))
    edges = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n))
    edges = {(rank[min(a, b)], rank[max(a, b)]) for a, b in edges if a != b}
    # Each edge is declared by either end: A Before=B, or B After=A.
    as_before = draw(st.lists(st.booleans(), min_size=len(edges), max_size=len(edges)))
    return names, sorted(edges), as_before


def units_for(names, edges, as_before, order):
    before = {n: [] for n in names}
    after = {n: [] for n in names}
    for (a, b), declared_by_a in zip(edges, as_before, strict=True):
        (before[a].append(b) if declared_by_a else after[b].append(a))
    return [
        Unit(name=n, path=Path(f"/u/{n}.unit"), hook=Hook.XDP, program=Program(object=Path("/p.o")),
             interfaces=("veth0",), proceed_on=frozenset({"pass"}), before=tuple(before[n]), after=tuple(after[n]))
        for n in order
    ]


@settings(max_examples=300, deadline=None)
@given(dag=dags(), data=st.data())
def test_random_dags_respect_every_edge_independent_of_input_order(dag, data):
    names, edges, as_before = dag
    key = HookKey("veth0", Hook.XDP)
    chain = order_hook(key, units_for(names, edges, as_before, names)).names
    position = {n: i for i, n in enumerate(chain)}
    assert sorted(chain) == sorted(names)
    assert all(position[a] < position[b] for a, b in edges)
    shuffled = data.draw(st.permutations(names))
    assert order_hook(key, units_for(names, edges, as_before, shuffled)).names == chain
