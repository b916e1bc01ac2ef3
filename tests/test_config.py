from pathlib import Path

import pytest

from bpfunits.config import ConfigError, defaults, load_config
from bpfunits.untrusted import FilePolicy


def test_every_key_has_a_default():
    c = defaults()
    assert c.units_dirs == (Path("/etc/bpfunits.d"), Path("/run/bpfunits.d"), Path("/usr/lib/bpfunits.d"))
    assert c.bpffs_root == Path("/sys/fs/bpf/bpfunits")
    assert (c.resync_period, c.xdp_mode, c.xdp_backend, c.tc_backend, c.tc_position) == (30.0, "auto", "auto", "auto", "first")
    assert c.takeover == () and c.counters is True and c.lock_file == Path("/run/bpfunits.lock")
    assert (c.strict_permissions, c.max_unit_size, c.max_object_size) == (True, 1 << 20, 64 << 20)
    assert c.file_policy == FilePolicy(), "callers without a configuration read files as the defaults say"


def test_file_values_and_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("units_dirs: [/a, /b]\nresync_period: 5\ntc_backend: cls_bpf\ntakeover: ['veth*']\ncounters: false\n")
    c = load_config(f)
    assert c.units_dirs == (Path("/a"), Path("/b")) and c.resync_period == 5.0 and c.tc_backend == "cls_bpf"
    assert c.takeover == ("veth*",) and c.counters is False
    o = c.override(units_dirs=["/x"], bpffs_root="/sys/fs/bpf/t1")
    assert o.units_dirs == (Path("/x"),) and o.bpffs_root == Path("/sys/fs/bpf/t1") and o.resync_period == 5.0


def test_empty_file_is_defaults(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("")
    assert load_config(f) == defaults()


def test_errors_name_file_line_and_key(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("counters: true\ntc_backend: tc\nresync_period: -1\nbogus: 1\n")
    with pytest.raises(ConfigError) as exc:
        load_config(f)
    text = str(exc.value)
    assert f"{f}:2: tc_backend: 'tc' is not one of ['auto', 'tcx', 'cls_bpf']" in text
    assert f"{f}:3: resync_period:" in text
    assert f"{f}:1: top level: Additional properties are not allowed ('bogus' was unexpected)" in text


def test_invalid_yaml_and_missing_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("a: [\n")
    with pytest.raises(ConfigError, match=r"c.yaml:2: invalid YAML"):
        load_config(f)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "none.yaml")


def test_metrics_listen(tmp_path):
    assert defaults().metrics_listen == "127.0.0.1:9464"
    f = tmp_path / "c.yaml"
    for good in ("", "0.0.0.0:9100", "[::]:9464", "node1:9464"):
        f.write_text(f"metrics_listen: '{good}'\n")
        assert load_config(f).metrics_listen == good
    for wrong in ("9464", "localhost", "a b:1", "[::1]9464", "host:123456"):
        f.write_text(f"metrics_listen: '{wrong}'\n")
        with pytest.raises(ConfigError, match="metrics_listen: .* does not match"):
            load_config(f)
