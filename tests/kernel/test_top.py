"""`bpfunits top` in a real terminal (tmux): live rates per unit while frames flow, and q quits."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bpfunits.cli import main
from tests.kernel.test_daemon import REPO, eventually, unit_text
from tests.traffic import Sender
from tests.unitfiles import write

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (scripts/setup-host.sh)")]


SERVER = f"bu-top-{secrets.token_hex(3)}"  # a tmux server of the tests' own, not the user's


def tmux(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["tmux", "-L", SERVER, "-f", "/dev/null", *args], capture_output=True, text=True)


def rows(session: str) -> dict[str, list[str]]:
    """The view's table, by unit: [interface, hook, unit, pkts/s, drops/s, packets, drops]."""
    screen = tmux("capture-pane", "-p", "-t", session).stdout
    return {cells[2]: cells for line in screen.splitlines() if len(cells := line.split()) == 7 and cells[0] != "INTERFACE"}


def test_top_shows_each_units_rates_live_and_quits_on_q(tmp_path: Path, veth_pair, bpffs_root, bpf_objects):
    units = tmp_path / "units"
    write(units, "10-count.unit", unit_text("counter.bpf.o"))
    write(units, "20-drop.unit", unit_text("dropper.bpf.o"))
    write(units, "30-count.unit", unit_text("counter.bpf.o"))
    assert main(["apply", "--netns", veth_pair.ns_a, "--units-dir", str(units), "--bpffs-root", str(bpffs_root.path)]) == 0
    session = f"bu-top-{secrets.token_hex(3)}"
    # Without LINES and COLUMNS, which curses would take over the terminal's size (pytest may set them).
    command = (f"cd {REPO} && exec env -u LINES -u COLUMNS {sys.executable} -m bpfunits top --netns {veth_pair.ns_a} "
               f"--units-dir {units} --bpffs-root {bpffs_root.path}")
    assert tmux("new-session", "-d", "-s", session, "-x", "140", "-y", "30", command).returncode == 0
    try:
        eventually(lambda: "bpfunits top - 1 hooks, 3 units" in tmux("capture-pane", "-p", "-t", session).stdout,
                   10, "the view is up")
        with Sender(veth_pair.ns_b, veth_pair.if_b, limit=500_000) as sender:
            sender.wait_sent(1000)
            shown = eventually(lambda: (r := rows(session)).get("20-drop") and float(r["20-drop"][4]) > 0 and r,
                               10, "drops/s of the dropper shown")
        assert [cells[2] for cells in shown.values()] == ["20-drop", "10-count", "30-count"], "busiest, then most drops, first"
        assert float(shown["10-count"][3]) > 0 and float(shown["10-count"][3]) >= float(shown["20-drop"][4])
        assert shown["30-count"][3:5] == ["0", "0"], "nothing gets past the dropper"
        assert shown["20-drop"][1] == "xdp" and shown["20-drop"][0] == veth_pair.if_a

        # Traffic stopped: the rates fall to 0 and the totals stay.
        idle = eventually(lambda: (r := rows(session)).get("20-drop") and r["20-drop"][3] == "0" and r, 10, "idle")
        assert int(idle["20-drop"][6]) == int(idle["20-drop"][5]) > 0
        tmux("send-keys", "-t", session, "q")
        eventually(lambda: tmux("has-session", "-t", session).returncode != 0, 5, "q quits")
    finally:
        tmux("kill-server")


def test_batch_prints_plain_refreshes(tmp_path: Path, veth_pair, bpffs_root, bpf_objects, capsys):
    units = tmp_path / "units"
    write(units, "10-count.unit", unit_text("counter.bpf.o"))
    args = ["--netns", veth_pair.ns_a, "--units-dir", str(units), "--bpffs-root", str(bpffs_root.path)]
    assert main(["apply", *args]) == 0
    capsys.readouterr()
    started = time.monotonic()
    assert main(["top", *args, "--batch", "2", "--interval", "0.2"]) == 0
    assert time.monotonic() - started >= 0.4
    out = capsys.readouterr().out
    assert out.count("bpfunits top: 1 hooks") == 2 and out.count(f"{veth_pair.if_a:<16} xdp        10-count") == 2
