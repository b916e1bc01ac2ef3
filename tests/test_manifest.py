"""A chain's manifest as bytes: what any root process (or another bpfunits version) may have put
in a frozen map of that name is read as no manifest of ours, never as a crash."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bpfunits.linker.manifest import FORMAT, Manifest, ManifestEntry, ManifestError

GOOD = Manifest("7", "xdp", (ManifestEntry("a", "00" * 32, "11" * 8, (1, 2), "inline", (("m", 3),)),), "/sys/fs/bpf/x")


def test_a_manifest_reads_back_the_same():
    assert Manifest.from_bytes(GOOD.to_bytes() + b"\0" * 7) == GOOD


def test_a_manifest_reads_back_its_globals():
    manifest = Manifest("7", "xdp", (ManifestEntry("a", "00" * 32, "11" * 8, (1,), "call", (), (("burst", "40"),)),))
    assert Manifest.from_bytes(manifest.to_bytes()).components[0].globals == (("burst", "40"),)


def test_fields_a_later_version_adds_are_ignored():
    data = json.loads(GOOD.to_bytes())
    data["components"][0]["later_field"] = [["burst", "40"]]
    data["later"] = 1
    assert Manifest.from_bytes(json.dumps(data).encode()) == GOOD


@pytest.mark.parametrize("change, error", [
    (lambda d: d.update(format=FORMAT + 1), f"manifest format {FORMAT + 1}, this bpfunits reads {FORMAT}"),
    (lambda d: d.pop("format"), "KeyError('format')"),
    (lambda d: d.pop("components"), "KeyError('components')"),
    (lambda d: d.update(components=7), "TypeError"),
    (lambda d: d["components"][0].update(proceed_on="x"), "ValueError"),
    (lambda d: d["components"][0].update(maps=[[1]]), "ValueError"),
    (lambda d: d["components"][0].update(globals=[["burst"]]), "ValueError"),
    (lambda d: d["components"][0].update(globals=5), "TypeError"),
    (lambda d: d["components"].append(3), "TypeError"),
])
def test_a_manifest_not_of_this_format_is_a_manifest_error(change, error):
    data = json.loads(GOOD.to_bytes())
    change(data)
    with pytest.raises(ManifestError, match=error.replace("(", r"\(").replace(")", r"\)")):
        Manifest.from_bytes(json.dumps(data).encode())


@given(st.binary(max_size=300))
def test_any_bytes_read_as_a_manifest_or_a_manifest_error(raw):
    with contextlib.suppress(ManifestError):
        Manifest.from_bytes(raw)


def test_a_deeply_nested_value_is_a_manifest_error():
    with pytest.raises(ManifestError):
        Manifest.from_bytes(b"[" * 100_000)
