"""Random and mutated unit files and drop-ins: always diagnostics or units, never an exception or a hang."""

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfunits.units.search import load_units
from tests.units.test_yaml import INI, YAML

SEEDS = list(INI.values()) + list(YAML.values())
DROPIN_SEEDS = ["[Attach]\nInterfaces=\nInterfaces=lab0\n", "[Unit]\nAfter=x y\n[Program]\nObject=o.o\nSHA256=\n"]
ALPHABET = string.printable + "[]=\\#;!*é\x00"


def mutate(text: str, edits: list[tuple[int, int, str]]) -> str:
    for kind, offset, chunk in edits:
        pos = offset % (len(text) + 1)
        if kind == 0:
            text = text[:pos] + chunk + text[pos:]
        elif kind == 1:
            text = text[:pos] + text[pos + len(chunk) + 1 :]
        else:
            text = text[:pos] + text[pos:] * 2
    return text


edits = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 400), st.text(ALPHABET, max_size=12)), max_size=8)
fuzz = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])


def check(folder, name: str, data: bytes, dropin: bytes | None = None) -> None:
    for old in sorted(folder.rglob("*"), reverse=True):
        old.rmdir() if old.is_dir() else old.unlink()
    (folder / name).write_bytes(data)
    if dropin is not None:
        (folder / "u.d").mkdir()
        (folder / "u.d" / "10-x.conf").write_bytes(dropin)
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


@fuzz
@given(seed=st.sampled_from(DROPIN_SEEDS), edits=edits, main=st.sampled_from(SEEDS), suffix=st.sampled_from([".unit", ".yaml"]))
def test_mutated_dropins(tmp_path, seed, edits, main, suffix):
    check(tmp_path, "u" + suffix, main.encode(), mutate(seed, edits).encode("utf-8", "surrogatepass"))


# YAML structure (anchors, aliases, tags, nesting, flow and block styles) rather than characters.
YAML_TOKENS = ["&a ", "*a", "!!str ", "!!float ", "!!binary ", "? ", "- ", ": ", "{", "}", "[", "]", ", ", "<<: ",
               ".inf", ".nan", "1.0e+999", "~", "'", '"', "|\n", "\n  ", "\n", "#", "%YAML 1.1\n---\n", "---\n"]


@fuzz
@given(seed=st.sampled_from(list(YAML.values())), tokens=st.lists(st.tuples(st.integers(0, 400), st.sampled_from(YAML_TOKENS)), max_size=12))
def test_yaml_structure(tmp_path, seed, tokens):
    check(tmp_path, "u.yaml", mutate(seed, [(0, pos, token) for pos, token in tokens]).encode())
