"""A forked worker for native code that handles untrusted input (libbpf parsing an ELF object,
clang inside bcc compiling a source): a crash or a hang there ends the worker only, and becomes
an error the caller reports for its one unit.

The worker is a fork of this process, so it starts without an interpreter start-up (about a
millisecond) and with every module already imported. Only the forking thread exists in it: it
runs its task and leaves with os._exit, never returning into the caller's code. The two talk over
a unix socket pair in JSON messages, each of which may carry file descriptors (SCM_RIGHTS): what
the worker made in the kernel (programs, maps) outlives it in the parent.
"""

from __future__ import annotations

import faulthandler
import json
import os
import resource
import signal
import socket
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bpfunits.errors import BpfUnitsError
from bpfunits.sys.libc import libc as _libc

MAX_FDS = 253  # SCM_MAX_FD: descriptors in one message
_HEADER = struct.Struct("<Q")  # the JSON body's length; the message's fds ride on it
_PR_SET_PDEATHSIG = 1


class WorkerFailed(BpfUnitsError):
    """The worker died, overran its time or answered nonsense; `detail` says which."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass
class Message:
    """A JSON value and the descriptors that came with it (the receiver's to close)."""

    body: Any
    fds: list[int] = field(default_factory=list)

    def close_fds(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def fds_by_number(self, numbers: list[int]) -> dict[int, int]:
        """The message's fds by the numbers they had in the sender (`numbers`, in sending order)."""
        if len(numbers) != len(self.fds):
            raise WorkerFailed("the worker sent a different number of fds than it named")
        return dict(zip(numbers, self.fds, strict=True))


@contextmanager
def parsing(message: Message) -> Iterator[None]:
    """Around reading a worker's answer: one that does not parse is WorkerFailed, and whatever
    fails closes the fds that came with it."""
    try:
        yield
    except (KeyError, TypeError, ValueError) as exc:
        message.close_fds()
        raise WorkerFailed(f"the worker sent an answer that does not parse ({exc})") from exc
    except BaseException:
        message.close_fds()
        raise


class Channel:
    """One end of the socket pair."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send(self, body: Any, fds: list[int] | tuple[int, ...] = ()) -> None:
        data = json.dumps(body).encode()
        socket.send_fds(self.sock, [_HEADER.pack(len(data))], list(fds))
        self.sock.sendall(data)

    def receive(self, deadline: float | None = None) -> Message | None:
        """The next message, or None when the other end closed first. `deadline`
        (time.monotonic()) bounds the wait: TimeoutError past it."""
        header, fds = b"", []
        try:
            while len(header) < _HEADER.size:
                self._wait(deadline)
                chunk, got, flags, _ = socket.recv_fds(self.sock, _HEADER.size - len(header), MAX_FDS)
                fds += got
                if flags & socket.MSG_CTRUNC:
                    raise WorkerFailed("more file descriptors in one message than fit")
                if not chunk:
                    if header:
                        raise WorkerFailed("the worker sent a message cut short")
                    return None
                header += chunk
            (size,) = _HEADER.unpack(header)
            body = bytearray()
            while len(body) < size:
                self._wait(deadline)
                chunk = self.sock.recv(min(size - len(body), 1 << 20))
                if not chunk:
                    raise WorkerFailed("the worker sent a message cut short")
                body += chunk
            try:
                return Message(json.loads(body), fds)
            except ValueError:
                raise WorkerFailed("the worker sent a message that is not JSON") from None
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise

    def _wait(self, deadline: float | None) -> None:
        self.sock.settimeout(None if deadline is None else max(deadline - time.monotonic(), 0.001))


class Worker:
    """The parent's side: the channel, and the worker's fate when it stops answering."""

    def __init__(self, pid: int, channel: Channel, what: str) -> None:
        self.pid = pid
        self.channel = channel
        self.what = what  # who works in it, for messages: "libbpf"
        self._status: int | None = None

    def send(self, body: Any) -> None:
        try:
            self.channel.send(body)
        except OSError:
            raise WorkerFailed(self._ended()) from None

    def receive(self, timeout: float) -> Message:
        """The worker's next message; WorkerFailed if it dies or takes longer than `timeout` s."""
        try:
            message = self.channel.receive(time.monotonic() + timeout)
        except TimeoutError:
            self._kill()
            raise WorkerFailed(f"{self.what} did not finish within {timeout:g} s") from None
        if message is None:
            raise WorkerFailed(self._ended())
        if isinstance(message.body, dict) and "failure" in message.body:
            message.close_fds()
            raise WorkerFailed(f"{self.what} failed: {message.body['failure']}")
        return message

    def _ended(self) -> str:
        status = self._wait()
        if os.WIFSIGNALED(status):
            return f"{self.what} crashed on it ({signal.Signals(os.WTERMSIG(status)).name}, in a worker process)"
        return f"{self.what} exited with status {os.waitstatus_to_exitcode(status)} without an answer"

    def _kill(self) -> None:
        if self._status is None:
            os.kill(self.pid, signal.SIGKILL)
        self._wait()

    def _wait(self) -> int:
        if self._status is None:
            self._status = os.waitpid(self.pid, 0)[1]
        return self._status

    def close(self) -> None:
        """Hang up; a worker still busy after its parent hung up has nothing left to do."""
        self.channel.sock.close()
        if self._status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == 0:
                self._kill()
            else:
                self._status = status


@contextmanager
def forked(task: Callable[[Channel], None], what: str) -> Iterator[Worker]:
    """Run `task` in a forked worker with its end of the channel; the block talks to it.
    `what`: who works there, for messages ("libbpf")."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the worker
        status = 70  # EX_SOFTWARE: the task raised, and even reporting that failed
        try:
            ours.close()
            _become_worker(parent)
            channel = Channel(theirs)
            try:
                task(channel)
                status = 0
            except BaseException as exc:  # noqa: BLE001 - a bug here must reach the parent as an error
                channel.send({"failure": f"{type(exc).__name__}: {exc}"})
                status = 0
        finally:
            os._exit(status)
    theirs.close()
    worker = Worker(pid, Channel(ours), what)
    try:
        yield worker
    finally:
        worker.close()


def _become_worker(parent: int) -> None:
    # The parent's signal handlers are Python code of a process that is not this one.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    # A crash is an expected outcome here, not something to keep a core or a traceback of.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    faulthandler.disable()
    # Die with the parent (a SIGKILLed daemon leaves no worker loading into the kernel).
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(0)
