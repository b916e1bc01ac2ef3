"""plan and apply on the real kernel, in throwaway namespaces: the CLI end to end."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bpfunits.cli import main
from bpfunits.sys import bpf, netns
from bpfunits.hooks.observe import observe
from bpfunits.reconcile.lock import exclusive
from bpfunits.hooks import Hook
from tests.fixtures.features import tcx_param
from tests.timing import scaled
from tests.traffic import Receiver, frame, send_frames
from tests.unitfiles import write

pytestmark = pytest.mark.kernel
BPF = Path(__file__).resolve().parents[2] / "bpf"


def unit(obj: str, hook: str = "xdp", extra: str = "", interfaces: str = "bu*") -> str:
    return f"[Unit]\n{extra}\n[Program]\nObject={BPF / obj}\n[Attach]\nHook={hook}\nInterfaces={interfaces}\n"


def run_json(capsys, *argv) -> tuple[int, dict]:
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def cli(capsys, pair, units, root, command="apply"):
    return run_json(capsys, command, "--netns", pair.ns_a, "--units-dir", str(units), "--bpffs-root", str(root.path),
                    "--json", "--detailed-exitcode")


def hooks(doc) -> dict[tuple[str, str], dict]:
    return {(h["interface"], h["hook"]): h for h in doc["hooks"]}


def map_value(prog_id: int, name: str) -> int:
    """Slot 0 of the u64 array map `name` that the program with this id uses."""
    fds = bpf.prog_map_fds(prog_id)
    try:
        return struct.unpack("<Q", bpf.map_lookup(fds[name], struct.pack("<I", 0), 8))[0]
    finally:
        for fd in fds.values():
            os.close(fd)


@pytest.mark.matrix
def test_apply_creates_in_order_then_adopts_then_reorders_then_removes(tmp_path, capsys, veth_pair, bpffs_root, bpf_objects):
    units = tmp_path / "units"
    write(units, "10-count.unit", unit("counter.bpf.o"))
    write(units, "20-drop.unit", unit("dropper.bpf.o"))
    key = (veth_pair.if_a, "xdp")

    code, doc = cli(capsys, veth_pair, units, bpffs_root, "plan")
    assert code == 2 and hooks(doc)[key]["action"] == "create" and hooks(doc)[key]["outcome"] == "planned"
    with netns.inside(veth_pair.ns_a):
        assert observe(veth_pair.ifindex_a, Hook.XDP, bpffs_root).programs == (), "plan attaches nothing"

    code, doc = cli(capsys, veth_pair, units, bpffs_root)
    first = hooks(doc)[key]
    assert code == 2 and first["outcome"] == "applied"
    assert [c["unit"] for c in first["desired"]] == ["10-count", "20-drop"]
    send_frames(veth_pair.ns_b, veth_pair.if_b, [frame(i) for i in range(25)])
    assert map_value(first["prog_id"], "packets") == 25, "the counter runs first and sees every frame"

    code, doc = cli(capsys, veth_pair, units, bpffs_root)
    assert code == 0 and hooks(doc)[key]["outcome"] == "unchanged"
    assert hooks(doc)[key]["prog_id"] == first["prog_id"], "a second apply swaps nothing"

    write(units, "10-count.d/order.conf", "[Unit]\nAfter=20-drop\n")
    code, doc = cli(capsys, veth_pair, units, bpffs_root)
    second = hooks(doc)[key]
    assert code == 2 and second["action"] == "replace" and second["moved"] == ["20-drop"]
    assert second["prog_id"] != first["prog_id"]
    send_frames(veth_pair.ns_b, veth_pair.if_b, [frame(i) for i in range(25)])
    # The same map, carried over by its pin (25), and no more counts: the dropper now runs first.
    assert map_value(second["prog_id"], "packets") == 25

    assert bpffs_root.unit_path("10-count").is_dir()
    for f in units.rglob("*.unit"):
        f.unlink()
    code, doc = cli(capsys, veth_pair, units, bpffs_root)
    assert code == 2 and hooks(doc)[key]["action"] == "remove" and hooks(doc)[key]["outcome"] == "applied"
    with netns.inside(veth_pair.ns_a):
        assert observe(veth_pair.ifindex_a, Hook.XDP, bpffs_root).programs == ()
    assert list(bpffs_root.units_path.iterdir()) == [], "maps unpinned once the units left the datapath"


def test_errors_stay_with_their_hook(tmp_path, capsys, veth_pair, bpffs_root, bpf_objects):
    units = tmp_path / "units"
    write(units, "count.unit", unit("counter.bpf.o"))
    write(units, "tc.unit", unit("tc_actions.bpf.o", hook="tc-ingress"))
    code, doc = cli(capsys, veth_pair, units, bpffs_root)
    assert code == 2
    xdp_id = hooks(doc)[(veth_pair.if_a, "xdp")]["prog_id"]

    # A verifier rejection on xdp: xdp keeps its chain, tc-ingress still gets its change.
    write(units, "bad.unit", unit("invalid.bpf.o"))
    write(units, "tc2.unit", unit("tc_actions.bpf.o", hook="tc-ingress", extra="After=tc"))
    code, doc = cli(capsys, veth_pair, units, bpffs_root)
    got = hooks(doc)
    assert code == 1
    assert got[(veth_pair.if_a, "xdp")]["outcome"] == "blocked"
    assert "unit bad" in got[(veth_pair.if_a, "xdp")]["reasons"][0]
    assert "invalid access to packet" in got[(veth_pair.if_a, "xdp")]["reasons"][0], "the verifier's own words"
    assert got[(veth_pair.if_a, "xdp")]["prog_id"] == xdp_id
    assert got[(veth_pair.if_a, "tc-ingress")]["outcome"] == "applied"
    with netns.inside(veth_pair.ns_a):
        assert [p.prog_id for p in observe(veth_pair.ifindex_a, Hook.XDP, bpffs_root).programs] == [xdp_id]

    # A cycle blocks only its hook; a unit whose file breaks keeps its hook's chain.
    (units / "bad.unit").unlink()
    write(units, "tc.unit", unit("tc_actions.bpf.o", hook="tc-ingress", extra="After=tc2"))
    write(units, "count.unit", "[Attach]\nHook=xdpp\n")
    code, doc = cli(capsys, veth_pair, units, bpffs_root)
    got = hooks(doc)
    assert code == 1
    assert "ordering cycle tc -> tc2 -> tc" in got[(veth_pair.if_a, "tc-ingress")]["reasons"][0]
    assert got[(veth_pair.if_a, "xdp")]["outcome"] == "blocked"
    assert "unit count is running here but its files have errors" in got[(veth_pair.if_a, "xdp")]["reasons"][0]
    assert got[(veth_pair.if_a, "xdp")]["prog_id"] == xdp_id


@pytest.mark.matrix
def test_foreign_xdp_program_is_left_alone(tmp_path, capsys, veth_pair, bpffs_root, bpf_objects):
    subprocess.run(["ip", "-n", veth_pair.ns_a, "link", "set", "dev", veth_pair.if_a, "xdpgeneric", "obj",
                    str(BPF / "counter.bpf.o"), "sec", "xdp"], check=True)
    with netns.inside(veth_pair.ns_a):
        foreign = observe(veth_pair.ifindex_a, Hook.XDP, bpffs_root).programs
    units = tmp_path / "units"
    write(units, "count.unit", unit("counter.bpf.o"))
    code, doc = cli(capsys, veth_pair, units, bpffs_root)
    got = hooks(doc)[(veth_pair.if_a, "xdp")]
    assert code == 1 and got["outcome"] == "blocked" and "foreign XDP program" in got["reasons"][0]
    with netns.inside(veth_pair.ns_a):
        assert observe(veth_pair.ifindex_a, Hook.XDP, bpffs_root).programs == foreign
    # status says so once (issue 11 #16: it printed a blocked hook's reason again as its error)
    main(["status", "--netns", veth_pair.ns_a, "--units-dir", str(units), "--bpffs-root", str(bpffs_root.path),
          "--json"])
    (xdp,) = [h for h in json.loads(capsys.readouterr().out)["hooks"] if h["hook"] == "xdp"]
    assert len(xdp["errors"]) == 1 and "foreign XDP program" in xdp["errors"][0]


def test_missing_object_blocks_with_clear_error(tmp_path, capsys, veth_pair, bpffs_root, bpf_objects):
    units = tmp_path / "units"
    write(units, "ghost.unit", unit("nonexistent.bpf.o"))
    code, doc = cli(capsys, veth_pair, units, bpffs_root)
    got = hooks(doc)[(veth_pair.if_a, "xdp")]
    assert code == 1 and got["outcome"] == "blocked" and "nonexistent.bpf.o" in got["reasons"][0]


@pytest.mark.matrix
def test_status_shows_which_unit_dropped_the_traffic(tmp_path, capsys, veth_pair, bpffs_root, bpf_objects):
    units = tmp_path / "units"
    write(units, "10-count.unit", unit("counter.bpf.o"))
    write(units, "20-drop.unit", unit("dropper.bpf.o"))
    write(units, "30-count.unit", unit("counter.bpf.o"))
    assert cli(capsys, veth_pair, units, bpffs_root)[0] == 2
    send_frames(veth_pair.ns_b, veth_pair.if_b, [frame(i) for i in range(12)])
    write(units, "40-late.unit", unit("counter.bpf.o", extra="After=30-count"))
    write(units, "50-bad.unit", unit("invalid.bpf.o", hook="xdp", extra="After=40-late"))

    code, doc = run_json(capsys, "status", "--netns", veth_pair.ns_a, "--units-dir", str(units),
                         "--bpffs-root", str(bpffs_root.path), "--json")
    xdp = next(h for h in doc["hooks"] if h["hook"] == "xdp")
    rows = {u["unit"]: u for u in xdp["units"]}
    assert code == 1, "a failed unit is an error"
    assert xdp["program"]["backend"] == "xdp-link" and xdp["pending"] == "blocked"
    assert [u["unit"] for u in xdp["units"]] == ["10-count", "20-drop", "30-count", "40-late", "50-bad"]
    assert (rows["10-count"]["state"], rows["10-count"]["packets"], rows["10-count"]["verdicts"]) == ("active", 12, {"pass": 12})
    assert (rows["20-drop"]["packets"], rows["20-drop"]["verdicts"]) == (12, {"drop": 12})
    assert (rows["30-count"]["state"], rows["30-count"]["packets"], rows["30-count"]["verdicts"]) == ("active", 0, {})
    assert (rows["40-late"]["state"], rows["40-late"]["packets"]) == ("pending", None)
    assert rows["50-bad"]["state"] == "failed" and "invalid access to packet" in rows["50-bad"]["error"]

    assert main(["status", "--netns", veth_pair.ns_a, "--units-dir", str(units), "--bpffs-root", str(bpffs_root.path)]) == 1
    text = capsys.readouterr().out
    assert f"{veth_pair.if_a} xdp  (prog {xdp['program']['id']} tag" in text
    assert "20-drop              active            12  drop=12" in text


def test_status_reads_the_counts_of_a_32_unit_chain_after_real_traffic(tmp_path, capsys, veth_pair, bpffs_root, bpf_objects):
    units = tmp_path / "units"
    for n in range(32):
        write(units, f"{n:02d}-count.unit", unit("counter.bpf.o"))
    write(units, "99-drop.unit", unit("dropper.bpf.o"))
    assert cli(capsys, veth_pair, units, bpffs_root)[0] == 2
    send_frames(veth_pair.ns_b, veth_pair.if_b, [frame(i) for i in range(21)])
    code, doc = run_json(capsys, "status", "--netns", veth_pair.ns_a, "--units-dir", str(units),
                         "--bpffs-root", str(bpffs_root.path), "--json")
    rows = {u["unit"]: (u["packets"], u["verdicts"]) for u in hooks(doc)[(veth_pair.if_a, "xdp")]["units"]}
    assert rows == {**{f"{n:02d}-count": (21, {"pass": 21}) for n in range(32)}, "99-drop": (21, {"drop": 21})}


def tc_unit(obj: str, name: str, extra: str = "") -> str:
    return (f"[Unit]\n{extra}\n[Program]\nObject={BPF / obj}\nName={name}\n"
            "[Attach]\nHook=tc-ingress\nInterfaces=bu*\n")


def action_frame(action: int, seq: int) -> bytes:
    # tc_actions returns byte 14 (the top byte of the frame's sequence number) as its action.
    return frame(((action & 0xFF) << 24) | seq)


@pytest.mark.parametrize("backend", [tcx_param("tcx"), "cls_bpf"])
@pytest.mark.matrix
def test_tc_chain_attached_for_real_takes_the_chains_path(tmp_path, capsys, veth_pair, bpffs_root, bpf_objects, backend):
    units = tmp_path / "units"
    write(units, "10-count.unit", tc_unit("attach_counter.bpf.o", "tc_count_a"))
    write(units, "20-act.unit", tc_unit("tc_actions.bpf.o", "choose_action"))
    write(units, "30-count.unit", tc_unit("attach_counter.bpf.o", "tc_count_b"))
    config = tmp_path / "c.yaml"
    config.write_text(f"tc_backend: {backend}\n")
    base = ["--netns", veth_pair.ns_a, "--units-dir", str(units), "--bpffs-root", str(bpffs_root.path),
            "--config", str(config), "--json"]
    code, doc = run_json(capsys, "apply", *base)
    assert code == 0 and hooks(doc)[(veth_pair.if_a, "tc-ingress")]["outcome"] == "applied"

    frames = [action_frame(-1, i) for i in range(5)] + [action_frame(2, i) for i in range(3)]
    frames += [action_frame(0, i) for i in range(4)]
    with Receiver(veth_pair.ns_a, veth_pair.if_a) as rx:
        send_frames(veth_pair.ns_b, veth_pair.if_b, frames)
        rx.wait_for(9)
        arrived = rx.settle()

    code, doc = run_json(capsys, "status", *base)
    hook = next(h for h in doc["hooks"] if h["hook"] == "tc-ingress")
    assert hook["program"]["backend"] == backend
    rows = {u["unit"]: (u["packets"], u["verdicts"]) for u in hook["units"]}
    assert rows == {
        "10-count": (12, {"next": 12}),
        "20-act": (12, {"next": 5, "shot": 3, "ok": 4}),
        "30-count": (9, {"next": 9}),
    }
    assert arrived == 9, "the shot frames were dropped by the chain, the others went on to the stack"


@pytest.mark.parametrize("backend", ["link", "netlink"])
@pytest.mark.matrix
def test_xdp_chain_attached_for_real_takes_the_chains_path(tmp_path, capsys, veth_pair, bpffs_root, bpf_objects, backend):
    units = tmp_path / "units"
    write(units, "10-count.unit", unit("counter.bpf.o"))
    write(units, "20-drop.unit", unit("dropper.bpf.o"))
    write(units, "30-count.unit", unit("counter.bpf.o"))
    config = tmp_path / "c.yaml"
    config.write_text(f"xdp_backend: {backend}\n")
    base = ["--netns", veth_pair.ns_a, "--units-dir", str(units), "--bpffs-root", str(bpffs_root.path),
            "--config", str(config), "--json"]
    assert run_json(capsys, "apply", *base)[0] == 0
    with Receiver(veth_pair.ns_a, veth_pair.if_a) as rx:
        send_frames(veth_pair.ns_b, veth_pair.if_b, [frame(i) for i in range(7)])
        time.sleep(scaled(0.3))
        arrived = rx.stop()
    code, doc = run_json(capsys, "status", *base)
    hook = next(h for h in doc["hooks"] if h["hook"] == "xdp")
    assert hook["program"]["backend"] == f"xdp-{backend}"
    assert {u["unit"]: (u["packets"], u["verdicts"]) for u in hook["units"]} == {
        "10-count": (7, {"pass": 7}), "20-drop": (7, {"drop": 7}), "30-count": (0, {})}
    assert arrived == 0


def test_reconciles_never_overlap_across_processes(tmp_path, veth_pair, bpffs_root):
    units = tmp_path / "units"
    write(units, "count.unit", unit("counter.bpf.o"))
    config = tmp_path / "c.yaml"
    config.write_text(f"lock_file: {tmp_path / 'lock'}\n")
    argv = [sys.executable, "-m", "bpfunits", "apply", "--netns", veth_pair.ns_a, "--units-dir", str(units),
            "--bpffs-root", str(bpffs_root.path), "--config", str(config)]
    with exclusive(tmp_path / "lock"):
        other = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        time.sleep(scaled(1.5))
        assert other.poll() is None, "apply waits for the lock"
        with netns.inside(veth_pair.ns_a):
            assert observe(veth_pair.ifindex_a, Hook.XDP, bpffs_root).programs == ()
    assert other.wait(timeout=scaled(20)) == 0 and "1 applied" in other.stdout.read()


@pytest.mark.matrix
def test_takeover_replaces_a_foreign_xdp_program_in_one_step(tmp_path, capsys, veth_pair, bpffs_root, bpf_objects):
    subprocess.run(["ip", "-n", veth_pair.ns_a, "link", "set", "dev", veth_pair.if_a, "xdpgeneric", "obj",
                    str(BPF / "attach_foreign.bpf.o"), "sec", "xdp"], check=True)
    units = tmp_path / "units"
    write(units, "count.unit", unit("counter.bpf.o"))
    config = tmp_path / "c.yaml"
    config.write_text("takeover: ['bu*']\n")
    code, doc = run_json(capsys, "apply", "--netns", veth_pair.ns_a, "--units-dir", str(units),
                         "--bpffs-root", str(bpffs_root.path), "--config", str(config), "--json")
    got = hooks(doc)[(veth_pair.if_a, "xdp")]
    assert code == 0 and got["action"] == "create" and got["outcome"] == "applied"
    with netns.inside(veth_pair.ns_a):
        programs = observe(veth_pair.ifindex_a, Hook.XDP, bpffs_root).programs
    assert [(p.prog_id, p.ours) for p in programs] == [(got["prog_id"], True)]
