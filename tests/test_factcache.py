"""The programs cache (issue 12): what the kernel said about programs, kept from one process to the
next. It is only ever a cache: a file of another boot, version or owner, or with any content
bpfunits does not write, is none, and everything is read from the kernel again."""

from __future__ import annotations

import json
import os

import pytest

from bpfunits.hooks.observe import Known, ProgramFacts
from bpfunits.linker.manifest import Manifest, ManifestEntry
from bpfunits.reconcile import factcache
from bpfunits.sys.bpf import ProgInfo

MANIFEST = Manifest("v1", "xdp", (ManifestEntry("a", "00" * 32, "11" * 8, (2,), "inline", (("m", 7),)),), "/sys/fs/bpf/x")
KNOWN = {
    10: Known(ProgInfo(10, 6, "bpfu_chain", "ab" * 8, (7, 8)), MANIFEST),
    11: Known(ProgInfo(11, 6, "bpfu_chain", "cd" * 8, (9,)), MANIFEST),
    12: Known(ProgInfo(12, 3, "foreign", "ef" * 8, ()), None),
}


@pytest.fixture
def path(tmp_path):
    return tmp_path / "run" / "programs.json"


def test_what_is_saved_is_loaded_each_manifest_once(path):
    factcache.save(path, KNOWN)
    assert factcache.load(path) == KNOWN
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert len(json.loads(path.read_text())["manifests"]) == 1


def test_facts_know_only_programs_whose_info_and_manifest_were_read_without_run_counts():
    info = ProgInfo(10, 6, "bpfu_chain", "ab" * 8, (7,), run_cnt=5, run_time_ns=9)
    facts = ProgramFacts({10: Known(info, MANIFEST)})
    assert facts.info(10) == info and facts.manifest(10) == MANIFEST  # no kernel asked: id 10 need not exist
    assert facts.known() == {10: Known(ProgInfo(10, 6, "bpfu_chain", "ab" * 8, (7,)), MANIFEST)}


def test_a_file_of_another_boot_is_no_cache(path, tmp_path, monkeypatch):
    factcache.save(path, KNOWN)
    other = tmp_path / "boot_id"
    other.write_text("00000000-0000-0000-0000-000000000000\n")
    monkeypatch.setattr(factcache, "_BOOT_ID", other)
    assert factcache.load(path) == {}


@pytest.mark.parametrize("change", [
    lambda d: d.update(version=2),
    lambda d: d["programs"][0].__setitem__(5, 3),  # a manifest that is not there
    lambda d: d["programs"][0].__setitem__(4, ["x"]),
    lambda d: d["programs"].append([1, 2, 3]),
    lambda d: d["manifests"].__setitem__(0, "{}"),
    lambda d: d.pop("boot"),
    lambda d: d.update(programs={"10": 1}),
    lambda d: d["manifests"].__setitem__(0, 1),
    lambda d: d["programs"][0].__setitem__(5, -1),  # a Python index, not one bpfunits writes
    lambda d: d["programs"][0].__setitem__(0, "10"),
    lambda d: d["programs"][0].__setitem__(0, True),
    lambda d: d["programs"][0].__setitem__(2, None),
    lambda d: d.update(manifests="{}"),
])
def test_content_bpfunits_does_not_write_is_no_cache(path, change):
    factcache.save(path, KNOWN)
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
    assert factcache.load(path) == {}


@pytest.mark.parametrize("text", ["", "[", "null", "[]", "{" * 100_000])
def test_a_file_that_is_not_json_of_an_object_is_no_cache(path, text):
    path.parent.mkdir()
    path.write_text(text)
    os.chmod(path, 0o600)
    assert factcache.load(path) == {}


def test_a_file_others_may_write_is_no_cache(path):
    factcache.save(path, KNOWN)
    os.chmod(path, 0o666)
    assert factcache.load(path) == {}


def test_no_file_is_no_cache(path):
    assert factcache.load(path) == {}
