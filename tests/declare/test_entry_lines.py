"""How plan, apply and the daemon's log spell a declared entry's difference."""

from bpfunits.declare.entries import Change, EntryDiff, leaf_changes
from bpfunits.declare.syntax import parse_value


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
