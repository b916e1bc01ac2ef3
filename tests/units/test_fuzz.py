"""Random and mutated unit files: always diagnostics or units, never an exception or a hang."""

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfunits.units.search import load_units
from tests.units.test_yaml import INI, YAML

SEEDS = list(INI.values()) + list(YAML.values())
ALPHABET = string.printable + "[]=\\#;!*é\x00"


def mutate(text: str, edits: list[tuple[int, int, str]]) -> str:
    for kind, pos, chunk in edits:
        pos = pos % (len(text) + 1)
        if kind == 0:
            text = text[:pos] + chunk + text[pos:]
        elif kind == 1:
            text = text[:pos] + text[pos + len(chunk) + 1 :]
        else:
            text = text[:pos] + text[pos:] * 2
    return text


edits = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 400), st.text(ALPHABET, max_size=12)), max_size=8)
fuzz = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])


def check(folder, name: str, data: bytes) -> None:
    for old in folder.iterdir():
        old.unlink()
    (folder / name).write_bytes(data)
    result = load_units((folder,))
    assert set(result.units) | {d.unit for d in result.diagnostics} <= {name.rsplit(".", 1)[0], None}
    for unit in result.units.values():
        assert unit.interfaces and unit.hook


@fuzz
@given(seed=st.sampled_from(SEEDS), edits=edits, suffix=st.sampled_from([".unit", ".yaml"]))
def test_mutated_units(tmp_path, seed, edits, suffix):
    check(tmp_path, "u" + suffix, mutate(seed, edits).encode("utf-8", "surrogatepass"))


@fuzz
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".unit", ".yaml"]))
def test_random_bytes(tmp_path, data, suffix):
    check(tmp_path, "u" + suffix, data)


@fuzz
@given(text=st.text(ALPHABET, max_size=300), suffix=st.sampled_from([".unit", ".yaml"]))
def test_random_text(tmp_path, text, suffix):
    check(tmp_path, "u" + suffix, text.encode("utf-8", "surrogatepass"))
