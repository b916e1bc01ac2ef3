"""Random and mutated configuration files: a Config or one ConfigError, never another exception or a hang."""

from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st

from bpfunits.config import ConfigError, load_config
from tests.units.test_fuzz import ALPHABET, YAML_TOKENS, edits, fuzz, mutate

SEEDS = [
    (Path(__file__).resolve().parents[1] / "packaging/debian/bpfunits.yaml").read_text().replace("# ", ""),
    "units_dirs: [/a, /b]\nresync_period: 5.5\ntc_backend: cls_bpf\ntakeover: ['veth*']\ncounters: false\n",
    "strict_permissions: false\nmax_unit_size: 4096\nmax_object_size: 1\nlock_file: /run/x.lock\n",
]

# Documents of any shape PyYAML can write, keys drawn from the real ones.
KEYS = st.sampled_from(["units_dirs", "bpffs_root", "resync_period", "takeover", "counters", "lock_file", "x"])
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(ALPHABET, max_size=20)
DOCUMENTS = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
                         max_leaves=20)


def check(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        config = load_config(path)
    except ConfigError as exc:
        assert str(exc).startswith(str(path)), "every error names the file"
    else:
        assert 0 < config.resync_period <= 86400, "a period the daemon can wait for"


@fuzz
@given(seed=st.sampled_from(SEEDS), edits=edits)
def test_mutated_configuration(tmp_path, seed, edits):
    check(tmp_path / "c.yaml", mutate(seed, edits).encode("utf-8", "surrogatepass"))


@fuzz
@given(seed=st.sampled_from(SEEDS), tokens=st.lists(st.tuples(st.integers(0, 600), st.sampled_from(YAML_TOKENS)), max_size=12))
def test_configuration_yaml_structure(tmp_path, seed, tokens):
    check(tmp_path / "c.yaml", mutate(seed, [(0, pos, token) for pos, token in tokens]).encode())


@fuzz
@given(document=DOCUMENTS)
def test_configuration_documents(tmp_path, document):
    check(tmp_path / "c.yaml", yaml.safe_dump(document).encode())


@fuzz
@given(data=st.binary(max_size=300))
def test_configuration_random_bytes(tmp_path, data):
    check(tmp_path / "c.yaml", data)
