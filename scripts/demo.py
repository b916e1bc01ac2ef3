#!/usr/bin/env python3
"""`make demo`: bpfunits end to end on units.example.d, in two network namespaces it creates.

Applies the example chain (ratelimit -> connlimit -> filter on XDP, counter on tc egress) to a
veth interface, sends frames that each unit has a reason to drop, shows `bpfunits status`,
reorders the chain live with a drop-in picked up by a running `bpfunits daemon`, sends the same
frames again, and removes everything it created, also on failure or Ctrl-C.
Run as root from the repository (the Makefile's `demo` target does the set-up first).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bpfunits.sys import netns
from bpfunits.state.bpffs import BPFFS, ensure_mounted, remove_tree

REPO = Path(__file__).resolve().parents[1]
# The demo waits as long as the tests do on this machine (BPFUNITS_TEST_TIME_FACTOR; the kernel matrix
# runs it under qemu TCG, where one bpfunits call takes 18-55 s): one helper for both, in tests/.
sys.path.insert(0, str(REPO))
from tests.timing import scaled  # noqa: E402

EXAMPLES = "units.example.d"
IFACE, PEER = "bpfu-demo0", "bpfu-peer0"  # IFACE matches the example units' `bpfu-demo*`
SERVER, PEER_ADDR, PREFIXLEN = "198.18.0.1", "198.18.0.2", 15
UDP_PORT = 5353
MAX_CONNS = 10  # connlimit's limit for the demo (its built-in default, 100, is more than we send)
DENIED = ipaddress.IPv4Network("198.19.66.0/24")
REFILL = 2.1  # seconds for ratelimit's buckets to refill (burst 20 at 10 SYN/s, its defaults)
DAEMON_WAIT = scaled(20.0)  # seconds for the daemon to start or to apply the edit

# The drop-in that reorders the chain: the filter no longer waits for connlimit but runs before it,
# so a denied source no longer spends connlimit's slots. (ratelimit stays first: Position=first.)
DROP_IN = "filter.d/10-demo.conf"
DROP_IN_TEXT = "[Unit]\n# An empty After= drops the unit's After=connlimit.\nAfter=\nBefore=connlimit\n"


class DemoError(Exception):
    pass


@dataclass(frozen=True)
class Source:
    """One sender: `syns` TCP SYNs to port 80, then `udps` UDP datagrams to the demo server."""

    addr: str
    role: str
    syns: int
    udps: int


SOURCES = (
    Source("198.18.1.1", "client", 3, 10),
    Source("198.18.1.2", "client", 3, 10),
    Source("198.18.1.3", "client", 3, 10),
    Source("198.18.2.1", "SYN flood", 60, 0),
    Source("198.19.66.1", f"in the denied prefix {DENIED}", 8, 10),
    Source("198.19.66.2", f"in the denied prefix {DENIED}", 8, 10),
)
CLIENT_PORT = 40000  # every UDP datagram's source port, where ns b listens for the echoes

# Why each unit drops what it drops in the first round (the numbers come from `bpfunits status`).
WHY_DROPPED = {
    "ratelimit": "the flood's SYNs beyond a burst of 20 (its built-in default)",
    "connlimit": f"the flood's SYNs beyond {MAX_CONNS} open connections",
    "filter": f"every frame from {DENIED}",
}


# --- frames (layouts as in tests/examples_frames.py, with a valid IPv4 header checksum: the
# stack behind XDP checks it) ---

def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ipv4(src: str, protocol: int, payload: bytes) -> bytes:
    fields = [0x45, 0, 20 + len(payload), 0, 0x4000, 64, protocol, 0,
              ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(SERVER).packed]
    fields[7] = _checksum(struct.pack("!BBHHHBBH4s4s", *fields))
    return struct.pack("!BBHHHBBH4s4s", *fields) + payload


def _syn(sport: int) -> bytes:
    # TCP checksum left 0: the stack discards the SYN after the chain, so it answers nothing.
    return struct.pack("!HHIIBBHHH", sport, 80, 1, 0, 5 << 4, 0x02, 65535, 0, 0)


def _udp() -> bytes:
    payload = b"bpfunits demo"
    return struct.pack("!HHHH", CLIENT_PORT, UDP_PORT, 8 + len(payload), 0) + payload  # checksum 0: none


def frames(dst_mac: bytes, src_mac: bytes, first_port: int) -> list[bytes]:
    """Each source's SYNs from ports `first_port` on: a round's own connections, as connlimit lets a
    SYN of a connection it knows (a retransmission) pass."""
    eth = dst_mac + src_mac + struct.pack("!H", 0x0800)
    out = []
    for s in SOURCES:
        out += [eth + _ipv4(s.addr, 6, _syn(first_port + i)) for i in range(s.syns)]
        out += [eth + _ipv4(s.addr, 17, _udp()) for _ in range(s.udps)]
    return out


# --- output ---

class Steps:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, title: str) -> None:
        self.n += 1
        print(f"\n{self.n}. {title}\n" + "-" * (len(title) + 3), flush=True)


def say(text: str) -> None:
    print(text, flush=True)


def run(cmd: list[str], *, show: bool = True) -> str:
    """Run a command from the repository; with `show`, print it (as `$ ...`) and its output.
    Any exit code but 0 fails the demo."""
    if show:
        say("$ " + shlex.join(cmd))
    argv = [sys.executable, "-m", "bpfunits", *cmd[1:]] if cmd[0] == "bpfunits" else cmd
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    if show and out.strip():
        say(out.rstrip())
    if proc.returncode != 0:
        raise DemoError(f"`{shlex.join(cmd)}` exited {proc.returncode}" + ("" if show else f":\n{out}"))
    return proc.stdout


# --- the demo's own resources ---

@dataclass(frozen=True)
class Demo:
    tag: str
    work: Path  # temp folder: config, lock, daemon log, the high-precedence units folder

    @property
    def ns_a(self) -> str:
        return f"bpfu-demo-{self.tag}-a"

    @property
    def ns_b(self) -> str:
        return f"bpfu-demo-{self.tag}-b"

    @property
    def bpffs_root(self) -> Path:
        return BPFFS / f"bpfunits-demo-{self.tag}"

    @property
    def config(self) -> Path:
        return self.work / "bpfunits.yaml"

    @property
    def units(self) -> Path:
        return self.work / "units"

    def common(self, *units_dirs: str | Path) -> list[str]:
        dirs = units_dirs or (self.units, EXAMPLES)
        return ["--config", str(self.config), *[a for d in dirs for a in ("--units-dir", str(d))],
                "--netns", self.ns_a]

    def pin(self, unit: str, map_name: str) -> str:
        return str(self.bpffs_root / "units" / unit / map_name)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def create_namespaces(d: Demo) -> None:
    for ns in (d.ns_a, d.ns_b):
        ip("netns", "add", ns)
        # No IPv6 chatter (router solicitations, MLD): every frame the chain counts is one we sent.
        # (/proc/sys/net shows the namespace of the thread that opens it; no sysctl binary needed.)
        with netns.inside(ns):
            for conf in ("all", "default"):
                Path(f"/proc/sys/net/ipv6/conf/{conf}/disable_ipv6").write_text("1")
    ip("link", "add", IFACE, "netns", d.ns_a, "type", "veth", "peer", "name", PEER, "netns", d.ns_b)
    for ns, ifname, addr in ((d.ns_a, IFACE, SERVER), (d.ns_b, PEER, PEER_ADDR)):
        ip("-n", ns, "addr", "add", f"{addr}/{PREFIXLEN}", "dev", ifname)
        ip("-n", ns, "link", "set", ifname, "up")
    # The sources live in ns b, and ns a knows their MAC without asking: the server's echoes reach
    # them, and no ARP reply enters the chain, so the chain counts exactly the frames we send.
    peer_mac = mac(d.ns_b, PEER).hex(":")
    for s in SOURCES:
        ip("-n", d.ns_b, "addr", "add", f"{s.addr}/32", "dev", PEER)
        ip("-n", d.ns_a, "neigh", "replace", s.addr, "lladdr", peer_mac, "dev", IFACE, "nud", "permanent")


def mac(ns: str, ifname: str) -> bytes:
    out = subprocess.run(["ip", "-n", ns, "-j", "link", "show", ifname], check=True, capture_output=True, text=True)
    return bytes.fromhex(json.loads(out.stdout)[0]["address"].replace(":", ""))


def _children() -> list[int]:
    """The PIDs of this process's children: a Ctrl-C can land after the daemon was forked and
    before its Popen returned, and then only the kernel knows it is ours."""
    me, found = str(os.getpid()), []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue  # gone meanwhile
        if fields.get("PPid", "").strip() == me:
            found.append(int(status.parent.name))
    return found


def _stop(pid: int) -> None:
    """SIGTERM (the daemon leaves the chain, which the namespaces take with them), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + scaled(10)
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def remove_everything(d: Demo) -> list[str]:
    """Undo whatever exists of the demo; returns what could not be removed."""
    problems = []
    for pid in _children():
        _stop(pid)
    for ns in (d.ns_a, d.ns_b):
        exists = Path(netns.ns_path(ns)).exists()
        if exists and subprocess.run(["ip", "netns", "del", ns], capture_output=True).returncode != 0:
            problems.append(f"namespace {ns}")
    try:
        remove_tree(d.bpffs_root)  # the units' pinned maps (and links, if any are left)
    except OSError as e:
        problems.append(f"{d.bpffs_root}: {e}")
    shutil.rmtree(d.work, ignore_errors=True)
    return problems


# --- traffic ---

@contextmanager
def udp_socket(ns: str, addr: str, port: int) -> Iterator[socket.socket]:
    with netns.inside(ns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.bind((addr, port))
        sock.setblocking(False)
        yield sock


def receive_all(sock: socket.socket) -> list[tuple[bytes, tuple[str, int]]]:
    """Every datagram waiting on the socket, after the veth had time to deliver them."""
    time.sleep(scaled(0.3))  # the veth delivers within microseconds; this is plenty
    got = []
    while True:
        try:
            got.append(sock.recvfrom(2048))
        except BlockingIOError:
            return got


def send_traffic(d: Demo, first_port: int) -> None:
    say(f"   raw Ethernet frames (AF_PACKET) from ns b to the server {SERVER} behind {IFACE}:")
    for s in SOURCES:
        udp = f" + {s.udps:2} UDP" if s.udps else " " * 9
        say(f"   {s.addr:<12} {s.syns:3} SYN{udp}   {s.role}")
    batch = frames(mac(d.ns_a, IFACE), mac(d.ns_b, PEER), first_port)
    with udp_socket(d.ns_a, SERVER, UDP_PORT) as server, udp_socket(d.ns_b, "0.0.0.0", CLIENT_PORT) as clients:
        with netns.inside(d.ns_b):
            sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        with sender:
            for f in batch:
                sender.sendto(f, (PEER, 0))
        arrived = receive_all(server)
        for data, addr in arrived:
            server.sendto(data, addr)  # the echo leaves through tc egress: the counter unit
        echoes = receive_all(clients)
    want = sum(s.udps for s in SOURCES if ipaddress.IPv4Address(s.addr) not in DENIED)
    say(f"   sent {len(batch)} frames; the UDP server in ns a got {len(arrived)} datagrams "
        f"(every client's {want}, none from {DENIED}) and echoed them; ns b got {len(echoes)} echoes")
    if any(ipaddress.IPv4Address(addr[0]) in DENIED for _, addr in arrived):
        raise DemoError("a datagram from the denied prefix reached the server")


# --- reading the story out of `bpfunits status --json` ---

def xdp_units(d: Demo) -> list[dict]:
    status = json.loads(run(["bpfunits", "status", *d.common(), "--json"], show=False))
    hooks = [h for h in status["hooks"] if h["interface"] == IFACE and h["hook"] == "xdp"]
    if not hooks:
        raise DemoError(f"no XDP chain on {IFACE} in `bpfunits status`")
    return hooks[0]["units"]


def who_dropped(d: Demo, why: dict[str, str], since: dict[str, tuple[int, int]] | None = None
                ) -> dict[str, tuple[int, int]]:
    """Prints each XDP unit's packets and drops since the counts `since` (with `why`, when
    given); returns each unit's counts, (packets, drops), as `status` shows them: counters go on
    across a relink, so a round's numbers are the difference."""
    units = xdp_units(d)
    say("   xdp chain: " + " -> ".join(u["unit"] for u in units))
    counts = {u["unit"]: (u["packets"] or 0, u["verdicts"].get("drop", 0)) for u in units}
    for name, (packets, drops) in counts.items():
        seen, dropped = (since or {}).get(name, (0, 0))
        reason = f": {why[name]}" if name in why else ""
        say(f"   {name:<10} saw {packets - seen:3} packets, dropped {drops - dropped:3}{reason}")
    return counts


def wait_for_log(log: Path, text: str, since: int = 0) -> list[str]:
    """The daemon's log lines from byte `since` on, once one of them contains `text`."""
    deadline = time.monotonic() + DAEMON_WAIT
    while time.monotonic() < deadline:
        lines = log.read_text()[since:].splitlines()
        if any(text in line for line in lines):
            return lines
        time.sleep(0.05)
    raise DemoError(f"the daemon did not log {text!r} within {DAEMON_WAIT:.0f} s:\n{log.read_text()}")


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp")  # dot files are ignored by bpfunits
    tmp.write_text(text)
    tmp.rename(path)


def main_steps(d: Demo, step: Steps, started: list[subprocess.Popen]) -> None:
    step("creating namespaces")
    create_namespaces(d)
    d.units.mkdir()
    # The metrics listener on any free port: another daemon may hold the default one.
    d.config.write_text(f"bpffs_root: {d.bpffs_root}\nlock_file: {d.work / 'lock'}\nresync_period: 5\n"
                        "metrics_listen: 127.0.0.1:0\n")
    say(f"   ns {d.ns_a}: {IFACE} {SERVER}/{PREFIXLEN}  <-- veth -->  ns {d.ns_b}: {PEER} {PEER_ADDR}/{PREFIXLEN}")
    say(f"   configuration {d.config}:")
    say("     " + d.config.read_text().rstrip().replace("\n", "\n     "))

    step("the example programs' configuration, declared in their units")
    say(f"   ratelimit: 10 SYN/s, bursts of 20; connlimit: at most {MAX_CONNS} connections per source; "
        f"filter: deny {DENIED}, and nothing else in its prefix map")
    for name in ("ratelimit.unit", "connlimit.unit", "filter.yaml"):
        text = (REPO / EXAMPLES / name).read_text()
        at = text.index("[Map]" if name.endswith(".unit") else "maps:")
        say(f"$ tail -n +{text.count(chr(10), 0, at) + 1} {EXAMPLES}/{name}")
        say(text[at:].rstrip())

    step("the units and their order")
    run(["bpfunits", "verify", "--units-dir", EXAMPLES, "--interfaces", IFACE])
    run(["bpfunits", "order", "--units-dir", EXAMPLES, "--interfaces", IFACE])

    step("bpfunits plan: the chains, and the map entries apply writes before attaching them")
    run(["bpfunits", "plan", *d.common()])

    step("bpfunits apply")
    run(["bpfunits", "apply", *d.common()])
    run(["bpftool", "map", "dump", "pinned", d.pin("filter", "prefixes_v4")])

    step("sending traffic")
    send_traffic(d, first_port=40000)
    first_round = time.monotonic()

    step("bpfunits status")
    run(["bpfunits", "status", *d.common()])
    seen_before = who_dropped(d, WHY_DROPPED)

    step("bpfunits daemon, in the background")
    log = d.work / "daemon.log"
    cmd = ["bpfunits", "daemon", *d.common()]
    say("$ " + shlex.join(cmd) + " &")
    # Its own session: Ctrl-C reaches the demo only, which then stops the daemon by PID.
    with log.open("w") as log_file:
        started.append(subprocess.Popen([sys.executable, "-m", *cmd], cwd=REPO, stdout=subprocess.DEVNULL,
                                        stderr=log_file, start_new_session=True))
    for line in wait_for_log(log, "reconcile (start)"):  # it finds the chain already in place
        say("   " + line)

    step("reordering the chain live: a drop-in for filter")
    drop_in = d.units / DROP_IN
    say(f"$ cat {drop_in}")
    say(DROP_IN_TEXT.rstrip())
    mark = log.stat().st_size
    written = time.monotonic()
    write_atomically(drop_in, DROP_IN_TEXT)
    for line in wait_for_log(log, "replace applied", since=mark):
        say("   " + line)
    say(f"   the daemon relinked the chain {time.monotonic() - written:.2f} s after the edit")
    run(["bpfunits", "order", "--units-dir", str(d.units), "--units-dir", EXAMPLES, "--interfaces", IFACE])

    step("the same traffic again, on the new chain")
    # ratelimit refills 10 tokens a second: after 2 s its buckets are full again, as in round one.
    time.sleep(max(0.0, first_round + REFILL - time.monotonic()))
    send_traffic(d, first_port=41000)
    run(["bpfunits", "status", *d.common()])
    say("   (this round only: each unit's counters went on from their totals across the relink, as "
        "`status` and the daemon's metrics show them)")
    seen_after = who_dropped(d, {"connlimit": f"all the flood's SYNs: it still counts the {MAX_CONNS} "
                                              "connections from before the reorder (its maps are pinned)"},
                             since=seen_before)
    after = seen_after["connlimit"][0] - seen_before["connlimit"][0]
    say(f"   connlimit saw {seen_before['connlimit'][0]} packets before the reorder and {after} "
        f"after: the filter now drops {DENIED} before connlimit spends a slot on it")

    step("removing the chain: apply with no units")
    say(f"$ kill {started[0].pid}    # the daemon exits on SIGTERM and leaves the chain running")
    started[0].terminate()
    started[0].wait(timeout=scaled(10))
    empty = d.work / "empty"
    empty.mkdir()
    run(["bpfunits", "apply", *d.common(empty)])


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    if os.geteuid() != 0:
        print("make demo needs root (namespaces, BPF programs)", file=sys.stderr)
        return 1
    ensure_mounted(BPFFS)
    tag = secrets.token_hex(3)
    d = Demo(tag, Path(tempfile.mkdtemp(prefix=f"bpfu-demo-{tag}-")))
    started: list[subprocess.Popen] = []
    step = Steps()
    # SIGTERM and SIGHUP end the demo like Ctrl-C does: through the cleanup below.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    say(f"bpfunits demo {d.tag}: namespaces {d.ns_a} and {d.ns_b}, pins under {d.bpffs_root}")
    code = 0
    try:
        main_steps(d, step, started)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        code = 130
    except (DemoError, subprocess.CalledProcessError, OSError) as e:
        detail = getattr(e, "stderr", None) or ""
        print(f"\ndemo failed: {e}\n{detail}".rstrip(), file=sys.stderr)
        code = 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        step("cleaning up")
        problems = remove_everything(d)
        if problems:
            print("could not remove: " + ", ".join(problems), file=sys.stderr)
            code = code or 1
        else:
            say(f"   removed namespaces {d.ns_a} {d.ns_b}, {d.bpffs_root}, {d.work}")
    if code == 0:
        say("\ndemo finished: everything it created is gone")
    return code


if __name__ == "__main__":
    sys.exit(main())
