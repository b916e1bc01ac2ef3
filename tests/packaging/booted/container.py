"""A Debian 12 container booted with systemd-nspawn (systemd as its PID 1), in a network namespace
the test made, with a bpffs folder of the host as its /sys/fs/bpf. Commands run inside through
nsenter; the container is powered off, or killed by the PIDs this module started, on the way out."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.timing import scaled

PATH = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"


class ContainerError(AssertionError):
    pass


@dataclass(frozen=True)
class Boot:
    """What the container is booted with: `root` (overlaid, never written), the network
    namespace's path, the bpffs folder bound as /sys/fs/bpf, and read-only binds (host, inside)."""

    root: Path
    netns: Path
    bpffs: Path
    binds_ro: tuple[tuple[Path, str], ...] = ()

    def argv(self, machine: str) -> list[str]:
        return [
            "systemd-nspawn", "--quiet", "-D", str(self.root), f"--machine={machine}", "--register=no", "--keep-unit",
            "--boot", "--volatile=overlay", "--console=read-only", f"--network-namespace-path={self.netns}",
            f"--bind={self.bpffs}:/sys/fs/bpf",
            # nspawn's own filter lets bpf(2) through only with CAP_BPF, which it does not grant:
            # the service's CAP_SYS_ADMIN is what bpfunits uses, as on a host.
            "--system-call-filter=bpf",
            *(f"--bind-ro={host}:{inside}" for host, inside in self.binds_ro),
        ]


class Container:
    def __init__(self, boot: Boot, log: Path) -> None:
        self.machine = f"bu-{secrets.token_hex(4)}"
        self._log = log
        with log.open("w") as out:
            self._nspawn = subprocess.Popen(boot.argv(self.machine), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        self.init_pid: int | None = None
        try:
            self.init_pid = self._wait_for_init()
            self._wait_until_running()
        except BaseException:
            self.stop()
            raise

    def _wait_for_init(self) -> int:
        """The container's systemd: nspawn's child, once it has exec'd."""
        pid = self._nspawn.pid
        deadline = time.monotonic() + scaled(30)
        while time.monotonic() < deadline:
            if self._nspawn.poll() is not None:
                raise ContainerError(f"systemd-nspawn exited ({self._nspawn.returncode}):\n{self._log.read_text()}")
            for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
                try:
                    if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                        return int(child)
                except FileNotFoundError:
                    pass
            time.sleep(0.05)
        raise ContainerError(f"no systemd in the container after 30 s:\n{self._log.read_text()}")

    def _wait_until_running(self) -> None:
        deadline = time.monotonic() + scaled(60)
        state = ""
        while time.monotonic() < deadline:
            state = self.run("systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(0.2)
        raise ContainerError(f"the container's systemd is {state!r} after 60 s:\n{self._log.read_text()}")

    def run(self, *argv: str, check: bool = True, input: bytes | str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        """`argv` inside the container (all its namespaces, a clean environment)."""
        assert self.init_pid is not None
        command = ["nsenter", "-t", str(self.init_pid), "-a", "env", "-i", PATH, *argv]
        text = not isinstance(input, bytes)
        run = subprocess.run(command, capture_output=True, text=text, input=input, timeout=scaled(timeout),
                             **({} if input is not None else {"stdin": subprocess.DEVNULL}))
        if check and run.returncode != 0:
            raise ContainerError(f"{' '.join(argv)} exited {run.returncode}:\n{run.stdout}{run.stderr}")
        return run

    def sh(self, script: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("sh", "-ec", script, check=check)

    def write(self, path: str, text: str) -> None:
        self.run("sh", "-c", 'cat > "$1"', "sh", path, input=text)

    def stop(self) -> None:
        """Power off (SIGTERM to nspawn halts the container's systemd); failing that, kill the
        container's PID 1 (which takes its whole PID namespace) and nspawn, by their PIDs."""
        if self._nspawn.poll() is not None:
            return
        self._nspawn.send_signal(signal.SIGTERM)
        try:
            self._nspawn.wait(scaled(30))
            return
        except subprocess.TimeoutExpired:
            pass
        for pid in (self.init_pid, self._nspawn.pid):
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._nspawn.wait()
