from bpfunits.order.interfaces import literal_names, select

HOST = ["eth0", "veth0", "veth1", "veth-mgmt", "lo"]


def test_exact_glob_and_exclusion():
    assert select(["eth0"], HOST) == ["eth0"]
    assert select(["veth*", "!veth-mgmt"], HOST) == ["veth0", "veth1"]
    assert select(["veth?", "eth[0-9]"], HOST) == ["eth0", "veth0", "veth1"]


def test_only_exclusions_select_everything_else():
    assert select(["!lo", "!veth*"], HOST) == ["eth0"]


def test_absent_interface_selects_nothing():
    assert select(["wg0"], HOST) == []


def test_literal_names():
    assert literal_names(["eth0", "veth*", "!lo", "a[0]"]) == {"eth0"}
