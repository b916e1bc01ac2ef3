from bpfunits.hooks import Hook
from bpfunits.order.graph import HookKey
from bpfunits.plan.diff import plan_all, plan_hook
from bpfunits.plan.model import Action, ChainState, ChainMember, Desired, Observed

KEY = HookKey("veth0", Hook.XDP)


def chain(*units: str, build="v1", digest="d") -> ChainState:
    return ChainState(tuple(ChainMember(u, f"{digest}-{u}", "t", (2,)) for u in units), build)


def plan(want, have, errors=()):
    return plan_hook(KEY, Desired(KEY, want, errors) if want is not None or errors else None,
                     Observed(KEY, have) if have is not None else None)


def test_unchanged():
    p = plan(chain("a", "b"), chain("a", "b"))
    assert p.action is Action.UNCHANGED and not p.changes_kernel


def test_nothing_anywhere_is_unchanged():
    assert plan(None, None).action is Action.UNCHANGED


def test_create_and_remove():
    p = plan(chain("a", "b"), None)
    assert (p.action, p.added) == (Action.CREATE, ("a", "b"))
    p = plan(None, chain("a"))
    assert (p.action, p.removed) == (Action.REMOVE, ("a",))


def test_replace_lists_added_removed_moved_changed():
    have = chain("a", "b", "c", "d")
    want = ChainState(
        (ChainMember("d", "d-d", "t", (2,)), ChainMember("a", "d-a", "t", (2,)), ChainMember("b", "new", "t", (2,)),
         ChainMember("e", "d-e", "t", (2,))),
        "v1",
    )
    p = plan(want, have)
    assert p.action is Action.REPLACE
    assert (p.added, p.removed, p.moved, p.changed) == (("e",), ("c",), ("d",), ("b",))


def test_proceed_on_change_is_a_change():
    want = ChainState((ChainMember("a", "d-a", "t", (2, 3)),), "v1")
    p = plan(want, chain("a"))
    assert p.action is Action.REPLACE and p.changed == ("a",)


def test_build_change_alone_replaces_with_reason():
    p = plan(chain("a", build="v2"), chain("a", build="v1"))
    assert p.action is Action.REPLACE and p.reasons == ("chain build changed: v1 -> v2",)
    assert (p.added, p.removed, p.moved, p.changed) == ((), (), (), ())


def test_blocked_keeps_what_runs():
    p = plan(None, chain("a"), errors=("cycle a -> b -> a",))
    assert p.action is Action.BLOCKED and p.observed == chain("a") and p.desired is None
    assert not p.changes_kernel


def test_plan_all_covers_both_sides_sorted():
    k2 = HookKey("veth0", Hook.TC_EGRESS)
    plans = plan_all([Desired(KEY, chain("a"))], [Observed(k2, chain("b"))])
    assert [(p.key, p.action) for p in plans] == [(k2, Action.REMOVE), (KEY, Action.CREATE)]


def test_tag_change_alone_is_a_change():
    want = ChainState((ChainMember("a", "d-a", "other", (2,)),), "v1")
    assert plan(want, chain("a")).changed == ("a",)


def test_foreign_xdp_program_blocks_unless_takeover():
    observed = Observed(KEY, None, foreign=("xdp_prog (id 7)",))
    p = plan_hook(KEY, Desired(KEY, chain("a")), observed)
    assert p.action is Action.BLOCKED and "foreign XDP program xdp_prog (id 7)" in p.reasons[0]
    assert plan_hook(KEY, Desired(KEY, chain("a"), takeover=True), observed).action is Action.CREATE


def test_foreign_tc_programs_coexist():
    key = HookKey("veth0", Hook.TC_INGRESS)
    p = plan_hook(key, Desired(key, chain("a")), Observed(key, None, foreign=("x (id 3)",)))
    assert p.action is Action.CREATE
