"""How plan, apply and the daemon's log spell a declared entry's or global's difference."""

from bpfunits.declare.entries import Change, EntryDiff, leaf_changes
from bpfunits.declare.syntax import parse_value
from bpfunits.hooks import Hook
from bpfunits.order.graph import HookKey
from bpfunits.plan.diff import global_changes, plan_hook
from bpfunits.plan.model import Action, ChainMember, ChainState, Desired, Observed


def test_an_update_is_shown_member_by_member():
    found = parse_value("{rate=5 burst=20 pair=[{a=1} {a=2}] mac=02:00:00:00:00:01}")
    wanted = parse_value("{rate=50 burst=20 pair=[{a=1} {a=3}] mac=02:00:00:00:00:02}")
    leaves = tuple(leaf_changes(found, wanted))
    assert leaves == ((".rate", "5", "50"), (".pair[1].a", "2", "3"), (".mac", "02:00:00:00:00:01", "02:00:00:00:00:02"))
    diff = EntryDiff("u", "config", Change.UPDATE, "0", "{...}", "{...}", leaves=leaves)
    assert diff.lines() == ["~ config[0].rate 5 -> 50", "~ config[0].pair[1].a 2 -> 3",
                            "~ config[0].mac 02:00:00:00:00:01 -> 02:00:00:00:00:02"]
    assert tuple(leaf_changes("2", "1")) == (("", "2", "1"),)


def test_additions_and_removals_show_key_and_value():
    assert str(EntryDiff("u", "prefixes_v4", Change.ADD, "198.19.66.0/24", "2")) == "+ prefixes_v4 198.19.66.0/24 = 2"
    assert str(EntryDiff("u", "prefixes_v4", Change.REMOVE, "10.0.0.0/8", "2")) == "- prefixes_v4 10.0.0.0/8 = 2"


def test_a_changed_global_is_a_changed_unit_with_its_line():
    assert global_changes((("burst", "20"),), (("burst", "40"), ("rate", "5")), {"rate": "10"}) == [
        "~ global burst 20 -> 40", "~ global rate 10 -> 5"]
    assert global_changes((("burst", "20"),), (), {}) == ["~ global burst 20 -> (as compiled)"]
    key = HookKey("veth0", Hook.XDP)
    running = ChainState((ChainMember("rl", "d", "t", (2,), globals=(("burst", "20"),)),), "v1")
    wanted = ChainState((ChainMember("rl", "d", "t", (2,), globals=(("burst", "40"),), compiled=(("burst", "9"),)),),
                        "v1")
    plan = plan_hook(key, Desired(key, wanted), Observed(key, running))
    assert plan.action is Action.REPLACE and plan.changed == ("rl",)
    assert plan.reasons == ("unit rl: ~ global burst 20 -> 40",)
