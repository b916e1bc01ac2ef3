"""The daemon keeps units on event hooks as it keeps chains: attached when dropped, repaired at
its resync after someone removed the link, detached when the unit goes."""

from __future__ import annotations

import pytest

from bpfunits.hooks import eventlink
from bpfunits.hooks.events import parse_event_hook
from tests.kernel.test_daemon import BPF, daemon, drop, eventually  # noqa: F401 - the fixture

pytestmark = pytest.mark.kernel
HOOK = "tracepoint:syscalls/sys_enter_getppid"


def links(root) -> list[eventlink.Running]:
    return eventlink.running(root).get("tp", [])


def test_the_daemon_attaches_repairs_and_detaches_an_event_unit(daemon, bpffs_root):  # noqa: F811
    if eventlink.unavailable(parse_event_hook(HOOK)):
        pytest.skip("this kernel lacks the tracepoint hook (test_events asserts the unit's error)")
    d = daemon()
    drop(d.units, "tp.unit", f"[Program]\nObject={BPF / 'events.bpf.o'}\nName=tp_getppid\n[Attach]\nHook={HOOK}\n")
    [first] = eventually(lambda: links(bpffs_root), 3, "attached")
    first.pin.unlink()  # someone removes the pin: the link goes with it
    [again] = eventually(lambda: links(bpffs_root), 3, "repaired at the 1 s resync")
    assert again.link_id != first.link_id
    (d.units / "tp.unit").unlink()
    eventually(lambda: not eventlink.unit_events_path(bpffs_root, "tp").exists(), 3, "detached")
    expected = [("attach", "applied", first.link_id), ("attach", "applied", again.link_id), ("remove", "applied", None)]
    # The reconcile logs its result after it removed the folder: the record may come a moment later.
    eventually(lambda: [(r["action"], r["outcome"], r.get("link_id")) for r in d.records()
                        if r.get("unit") == "tp"] == expected, 3, "the removal logged")
