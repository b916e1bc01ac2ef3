"""`make demo` end to end, as CI runs it: the story it tells, and that it leaves nothing behind,
also when interrupted (Ctrl-C, SIGTERM) while its daemon runs."""

from __future__ import annotations

import re
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.timing import scaled

pytestmark = pytest.mark.kernel
REPO = Path(__file__).resolve().parents[2]
DEMO = [sys.executable, str(REPO / "scripts" / "demo.py")]

# What the demo sends (scripts/demo.py SOURCES): 135 frames, of which the flood's 60 SYNs from one
# source meet ratelimit's burst of 20 and connlimit's 10 connections, and 36 are from the denied prefix.
FRAMES, FLOOD, DENIED = 135, 60, 36
SUMMARY = re.compile(r"^   (\w+)\s+saw\s+(\d+) packets, dropped\s+(\d+)", re.M)


def demo_tag(output: str) -> str:
    found = re.search(r"^bpfunits demo ([0-9a-f]{6}):", output, re.M)
    assert found, output
    return found.group(1)


def leftovers(tag: str) -> list[str]:
    """Whatever of demo `tag` still exists: namespaces, bpffs pins, temp folders, processes."""
    name = f"bpfu-demo-{tag}"
    left = [str(p) for p in Path("/run/netns").glob(f"{name}-*")]
    left += [str(p) for p in Path("/sys/fs/bpf").glob(f"bpfunits-demo-{tag}")]
    left += [str(p) for p in Path("/tmp").glob(f"{name}-*")]
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if name.encode() in cmdline.read_bytes():
                left.append(f"process {cmdline.parent.name}")
        except OSError:
            pass  # gone meanwhile
    return left


def test_demo_tells_the_story_and_removes_everything(bpf_objects):
    proc = subprocess.run(DEMO, cwd=REPO, capture_output=True, text=True, timeout=scaled(120))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert leftovers(demo_tag(out)) == []

    # The example order, then the order after the drop-in, as `bpfunits order` prints them.
    assert "xdp         ratelimit -> connlimit -> filter" in out
    assert "xdp         ratelimit -> filter -> connlimit" in out
    assert "replace applied" in out  # the daemon picked the edit up itself
    assert out.count("ns b got 30 echoes") == 2  # every client datagram passed, both times
    assert re.search(r"counter\s+active\s+30\s+next=30", out)  # tc egress counted the echoes

    rows = [(unit, int(seen), int(dropped)) for unit, seen, dropped in SUMMARY.findall(out)]
    assert [r[0] for r in rows] == ["ratelimit", "connlimit", "filter", "ratelimit", "filter", "connlimit"], out
    (rl1, cl1, f1), (rl2, f2, cl2) = rows[:3], rows[3:]
    # Round one: each unit drops its own share, and each sees what the one before it passed.
    assert rl1[1] == FRAMES and 35 <= rl1[2] <= 40  # the flood beyond the burst (give a token or so)
    flood_through = FLOOD - rl1[2]
    assert cl1 == ("connlimit", FRAMES - rl1[2], flood_through - 10)
    assert f1 == ("filter", FRAMES - rl1[2] - cl1[2], DENIED)
    # Round two, filter before connlimit: the denied prefix no longer reaches connlimit, which
    # still remembers the flood's 10 connections and so drops every flood SYN that gets through.
    assert rl2[1] == FRAMES and 35 <= rl2[2] <= 40
    assert f2 == ("filter", FRAMES - rl2[2], DENIED)
    assert cl2 == ("connlimit", FRAMES - rl2[2] - DENIED, FLOOD - rl2[2])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_while_the_daemon_runs_still_removes_everything(bpf_objects, sig):
    proc = subprocess.Popen(DEMO, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("8. "):  # the daemon runs and the chain is attached
                break
        tag = demo_tag("".join(lines))
        assert Path(f"/run/netns/bpfu-demo-{tag}-a").exists(), "".join(lines)
        proc.send_signal(sig)
        rest = proc.stdout.read()
        assert proc.wait(timeout=scaled(60)) == 130, "".join(lines) + rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "cleaning up" in rest
    assert leftovers(tag) == []


CLEANUP_AFTER_A_LOST_CHILD = """
import importlib.util, os, subprocess, sys, tempfile
from pathlib import Path
spec = importlib.util.spec_from_file_location("demo", sys.argv[1])
demo = sys.modules["demo"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(demo)
# As when a Ctrl-C lands after the daemon was forked and before its Popen returned: a child in a
# session of its own that the demo holds no Popen of.
child = subprocess.Popen(["sleep", "60"], start_new_session=True).pid
d = demo.Demo(sys.argv[2], Path(tempfile.mkdtemp(prefix=f"bpfu-demo-{sys.argv[2]}-")))
assert demo.remove_everything(d) == []
try:
    os.kill(child, 0)
except ProcessLookupError:
    print("child stopped")
"""


def test_the_cleanup_stops_a_child_the_demo_lost_track_of():
    tag = secrets.token_hex(3)
    done = subprocess.run([sys.executable, "-c", CLEANUP_AFTER_A_LOST_CHILD, DEMO[1], tag], cwd=REPO,
                          capture_output=True, text=True, timeout=scaled(60))
    assert done.stdout.strip() == "child stopped", done.stdout + done.stderr
    assert leftovers(tag) == []
