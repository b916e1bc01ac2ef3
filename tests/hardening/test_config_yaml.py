"""Issue 11 #12: the configuration file and YAML units under hostile YAML. Each case is one error
with file and line: no traceback, no hang, no memory blow-up."""

from __future__ import annotations

import pytest

from bpfunits.config import ConfigError, load_config
from bpfunits.reconcile.lock import LockError, exclusive
from bpfunits.units.search import load_units
from tests.hardening.bounded import within
from tests.unitfiles import write

# The 472-byte bomb of the issue: nine levels of nine aliases, 387 million strings once expanded.
BOMB = "".join(
    f"{name}: &{name} [{', '.join(['*' + prev] * 9 if prev else ['lol'] * 9)}]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)


def config_error(tmp_path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with within(5), pytest.raises(ConfigError) as exc:
        load_config(path)
    return str(exc.value).replace(str(path), "c.yaml")


def test_config_yaml_alias_bomb_is_refused_at_once(tmp_path):
    assert config_error(tmp_path, BOMB + "takeover: *i\n") == "c.yaml:1: invalid YAML: anchors and aliases are not allowed"


def test_config_yaml_deep_nesting_is_an_error_not_a_recursion_error(tmp_path):
    got = config_error(tmp_path, "takeover: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert got == "c.yaml:1: invalid YAML: nested more than 64 levels deep"


@pytest.mark.parametrize("value", [".inf", "-.Inf", ".nan", "1.0e+999"])
def test_config_yaml_non_finite_resync_period(tmp_path, value):
    got = config_error(tmp_path, f"counters: true\nresync_period: {value}\n")
    assert got == f"c.yaml:2: invalid YAML: {value!r} is not a finite number"


def test_config_yaml_resync_period_beyond_a_day(tmp_path):
    # Finite, yet beyond what a timed wait accepts (OverflowError in the daemon).
    assert config_error(tmp_path, "resync_period: 1.0e+300\n").startswith("c.yaml:1: resync_period: 1e+300 is greater than")


def test_config_yaml_duplicate_keys(tmp_path):
    got = config_error(tmp_path, "counters: true\ntakeover: [a]\ncounters: false\n")
    assert got == "c.yaml:3: duplicate key 'counters'"


def test_config_yaml_lock_file_is_a_folder(tmp_path):
    got = config_error(tmp_path, f"counters: true\nlock_file: {tmp_path}\n")
    assert got == f"c.yaml:2: lock_file: {tmp_path} is a folder, not a file"


def test_config_yaml_lock_file_turned_folder_later_is_a_lock_error(tmp_path):
    with pytest.raises(LockError, match=f"cannot open the lock file {tmp_path}: Is a directory"), exclusive(tmp_path):
        pass


def test_config_yaml_nul_in_a_path(tmp_path):
    got = config_error(tmp_path, 'units_dirs: ["/etc/a\\0b"]\nlock_file: "/run/x\\0"\n')
    assert got.splitlines() == ["c.yaml:2: lock_file: '/run/x\\x00' does not match '^/[^\\\\u0000]*$'",
                                "c.yaml:1: units_dirs.0: '/etc/a\\x00b' does not match '^[^\\\\u0000]*$'"]


def test_config_yaml_not_utf8(tmp_path):
    (tmp_path / "c.yaml").write_bytes(b"takeover: [\xff]\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: not UTF-8 text \(byte 11\)"):
        load_config(tmp_path / "c.yaml")


def unit_errors(tmp_path, text: str) -> list[str]:
    write(tmp_path, "a.yaml", text)
    with within(5):
        result = load_units((tmp_path,))
    assert "a" not in result.units
    return [str(d).replace(str(tmp_path) + "/", "") for d in result.errors]


def test_config_yaml_unit_aliases_are_refused(tmp_path):
    text = "program: {object: a.o}\nattach:\n  hook: xdp\n  interfaces: &all [veth0, veth1]\n"
    assert unit_errors(tmp_path, text) == ["a.yaml:4: error: unit a: invalid YAML: anchors and aliases are not allowed"]


def test_config_yaml_unit_alias_bomb(tmp_path):
    text = BOMB + "program: {object: a.o}\nattach: {hook: xdp, interfaces: *i}\n"
    assert unit_errors(tmp_path, text) == ["a.yaml:1: error: unit a: invalid YAML: anchors and aliases are not allowed"]


def test_config_yaml_unit_deep_nesting(tmp_path):
    text = "description: " + "{a: " * 10_000 + "b" + "}" * 10_000 + "\n"
    assert unit_errors(tmp_path, text) == ["a.yaml:1: error: unit a: invalid YAML: nested more than 64 levels deep"]
