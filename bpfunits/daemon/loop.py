"""The daemon's event loop: decides when to reconcile, and calls the reconciler, one call at a
time, from the thread that runs it.

Watcher threads, the netlink listener and signal handlers only put Triggers on a queue; the
loop debounces them, adds the periodic resync, and speaks sd_notify. It never touches the
datapath itself, so stopping leaves whatever is attached running.
"""

from __future__ import annotations

import logging
import math
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Generic, TypeVar
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from bpfunits.daemon.batch import DEFAULT_DEBOUNCE, Batch
from bpfunits.daemon.echo import OwnXdp
from bpfunits.daemon.interfaces import InterfaceMonitor
from bpfunits.daemon.notify import Notifier, NotifyError
from bpfunits.daemon.trigger import Trigger
from bpfunits.daemon.watch import FolderWatch
from bpfunits.errors import BpfUnitsError

# Reasons that arrive in bursts and wait for quiet; the others reconcile at once.
DEBOUNCED = frozenset({"files", "interfaces", "xdp"})

_STOP = object()

HEARTBEAT_PERIOD = 5.0  # seconds: the longest the loop waits without a turn when it has a heartbeat


@dataclass(frozen=True)
class Settings:
    """What the loop itself takes from the configuration."""

    folders: tuple[Path, ...]
    resync_period: float


Result = TypeVar("Result")  # what a reconcile returns


class Daemon(Generic[Result]):
    """Reconciles at start, on file, interface and foreign XDP changes, every `resync_period`
    seconds and on SIGHUP, until SIGTERM/SIGINT or stop().

    `notify`: where to send sd_notify messages; None reads $NOTIFY_SOCKET (nothing is sent
    when that is unset). `status` turns a reconcile's result into the STATUS= text. `reload`,
    called on SIGHUP before that reconcile, rereads the configuration (the reconciler sees it
    too) and returns the loop's new settings; a BpfUnitsError keeps the running ones.
    `own_xdp` reads from a reconcile's result the XDP programs it left on each interface, so
    that the monitor's report of them triggers nothing. `retry_at` reads from it when
    (time.monotonic()) failed hooks are due to be tried again: a "retry" trigger then.
    `heartbeat` is called with time.monotonic() at every turn of the loop, which then turns at
    least every HEARTBEAT_PERIOD seconds (the liveness probe's sign of life)."""

    def __init__(
        self,
        *,
        reconcile: Callable[[Trigger], Result],
        folders: Sequence[Path],
        resync_period: float,
        debounce: float = DEFAULT_DEBOUNCE,
        netns: str | None = None,
        notify: Notifier | None = None,
        status: Callable[[Result], str] | None = None,
        log: logging.Logger | None = None,
        reload: Callable[[], Settings] | None = None,
        own_xdp: Callable[[Result], Mapping[str, frozenset[int]]] | None = None,
        retry_at: Callable[[Result], float | None] | None = None,
        heartbeat: Callable[[float], None] | None = None,
    ) -> None:
        if not math.isfinite(resync_period) or resync_period <= 0 or not math.isfinite(debounce) or debounce < 0:
            raise BpfUnitsError(
                f"daemon: the resync period must be positive and the debounce not negative, both finite "
                f"(got {resync_period} s and {debounce} s)"
            )
        self._reconcile = reconcile
        self._reload = reload
        self._folders = tuple(Path(f) for f in folders)
        self._resync_period = resync_period
        self._debounce = debounce
        self._netns = netns
        self._notifier = notify if notify is not None else Notifier.from_environment()
        self._status: Callable[[Result], str] = status or (lambda result: "reconciled")
        self._log = log or logging.getLogger("bpfunits.daemon")
        # SimpleQueue.put is reentrant, so signal handlers may call it while the loop waits.
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._watches: list[FolderWatch] = []
        self._own_xdp = own_xdp
        self._own = OwnXdp()
        self._retry_at_of = retry_at
        self._retry_at: float | None = None
        self._heartbeat = heartbeat

    def stop(self) -> None:
        self._queue.put(_STOP)

    def run(self) -> int:
        with ExitStack() as stack:
            stack.enter_context(self._signals())
            self._watch(self._folders)
            stack.callback(self._unwatch)
            monitor = InterfaceMonitor(self._queue.put, self._log, self._netns)
            monitor.start()
            stack.callback(monitor.close)
            # Watchers run before the first reconcile, so no change can slip in between.
            self._run_reconcile(Trigger("start"))
            self._notify("READY=1")
            self._loop()
            self._log.info("stopping; attached programs stay in place")
            self._notify("STOPPING=1")
        if self._notifier is not None:
            self._notifier.close()  # run() is the daemon's whole life
        return 0

    def _loop(self) -> None:
        batch = Batch(self._debounce)
        now = time.monotonic()
        resync_at = now + self._resync_period
        interval = self._notifier.watchdog_interval if self._notifier else None
        ping_at = now if interval else None
        while True:
            now = time.monotonic()
            if ping_at is not None and interval and now >= ping_at:
                self._notify("WATCHDOG=1")
                ping_at = now + interval
            due = [resync_at] + [t for t in (batch.deadline, ping_at, self._retry_at) if t is not None]
            if self._heartbeat is not None:
                self._heartbeat(now)
                due.append(now + HEARTBEAT_PERIOD)
            try:
                item = self._queue.get(timeout=max(0.0, min(due) - now))
            except queue.Empty:
                item = None
            if item is _STOP:
                return
            now = time.monotonic()
            trigger: Trigger | None = None
            if isinstance(item, Trigger):
                if self._own.is_echo(item):
                    self._log.debug("event: %s: our own change", item)
                elif item.reason in DEBOUNCED:
                    self._log.debug("event: %s", item)
                    batch.add(item, now)
                else:
                    trigger = item
            if trigger is None and batch.deadline is not None and now >= batch.deadline:
                trigger = batch.take()
            if trigger is None and now >= resync_at:
                trigger = Trigger("timer")
            if trigger is None and self._retry_at is not None and now >= self._retry_at:
                trigger = Trigger("retry")
            if trigger is not None:
                # What was waiting is looked at now too.
                if batch.deadline is not None:
                    waiting = batch.take()
                    trigger = replace(trigger, dirty=trigger.changes | waiting.changes)
                timer = trigger.reason == "timer"
                self._run_reconcile(trigger)
                if timer or trigger.changes.everything:
                    resync_at = time.monotonic() + self._resync_period

    def _watch(self, folders: tuple[Path, ...]) -> None:
        for folder in folders:
            watch = FolderWatch(folder, self._queue.put, self._log)
            watch.start()
            self._watches.append(watch)

    def _unwatch(self) -> None:
        for watch in self._watches:
            watch.close()
        self._watches = []

    def _reread_configuration(self, reload: Callable[[], Settings]) -> None:
        try:
            settings = reload()
        except BpfUnitsError as e:
            self._log.error("configuration not reloaded, the running one stays in force: %s", e)
            self._notify(f"STATUS=configuration not reloaded: {e}")
            return
        self._log.info("configuration reloaded")
        if settings.folders != self._folders:
            self._unwatch()
            self._folders = settings.folders
            self._watch(self._folders)
        self._resync_period = settings.resync_period

    def _run_reconcile(self, trigger: Trigger) -> None:
        if trigger.reason == "sighup" and self._reload is not None:
            self._reread_configuration(self._reload)
        # Watches follow their folders before the reconcile reads them: a folder that appeared,
        # vanished or (as a symlink) now points elsewhere. The reconcile reads what the watch
        # missed meanwhile; what changes later, the watch sees.
        for watch in self._watches:
            watch.rearm()
        self._log.info("reconcile: %s", trigger)
        try:
            result = self._reconcile(trigger)
        except Exception as e:
            # Logged, not fatal: the next trigger (at worst the resync timer) tries again.
            self._log.exception("reconcile failed: %s", e)
            self._notify(f"STATUS=reconcile failed: {e}")
            self._retry_at = None  # the resync tries everything again
            return
        if self._own_xdp is not None:
            self._own.remember(self._own_xdp(result))
        if self._retry_at_of is not None:
            self._retry_at = self._retry_at_of(result)
        try:
            text = self._status(result)
        except Exception:
            self._log.exception("status text failed")
            text = "reconciled"
        self._notify(f"STATUS={text}")

    def _notify(self, *assignments: str) -> None:
        if self._notifier is None:
            return
        try:
            self._notifier.send(*assignments)
        except NotifyError as e:
            self._log.warning("%s", e)

    @contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGHUP reconciles, SIGTERM/SIGINT stop; Python runs handlers in the main thread only,
        so elsewhere (a test's thread) stop() is the way out."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handlers = {
            signal.SIGHUP: lambda *_: self._queue.put(Trigger("sighup")),
            signal.SIGTERM: lambda *_: self._queue.put(_STOP),
            signal.SIGINT: lambda *_: self._queue.put(_STOP),
        }
        previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
