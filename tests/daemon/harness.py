"""A Daemon running in a thread of the test, with a reconcile that records its Triggers."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bpfunits.daemon import DEFAULT_DEBOUNCE, Daemon, Trigger
from tests.timing import scaled


@dataclass
class Recorder:
    """The reconcile callable: records each Trigger, with what `observe` saw at that moment."""

    observe: Callable[[], object] = lambda: None
    fail_on: Callable[[Trigger], bool] = lambda t: False
    calls: list[tuple[Trigger, object]] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, trigger: Trigger) -> str:
        seen = self.observe()
        with self._changed:
            self.calls.append((trigger, seen))
            self._changed.notify_all()
        if self.fail_on(trigger):
            raise RuntimeError(f"reconcile broke on {trigger.reason}")
        return f"reconciled on {trigger.reason}"

    @property
    def triggers(self) -> list[Trigger]:
        with self._changed:
            return [t for t, _ in self.calls]

    def wait(self, count: int, timeout: float = 3.0) -> list[Trigger]:
        """The first `count` triggers, waiting up to `timeout` seconds for them."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.calls) >= count, scaled(timeout)):
                raise AssertionError(f"waited {scaled(timeout)}s for {count} reconciles, got {self.triggers}")
        return self.triggers[:count]

    def quiet(self, seconds: float) -> list[Trigger]:
        """Every trigger so far, after `seconds` more without asserting anything."""
        time.sleep(seconds)
        return self.triggers


@contextmanager
def running(recorder: Recorder, folders: list[Path], **options) -> Iterator[Daemon]:
    """The daemon, run in a thread until the block ends; its first (start) reconcile is done."""
    options.setdefault("resync_period", 60.0)
    options.setdefault("debounce", DEFAULT_DEBOUNCE)
    daemon = Daemon(reconcile=recorder, folders=folders, log=logging.getLogger("bpfunits.daemon"), **options)
    exit_code: list[int] = []
    thread = threading.Thread(target=lambda: exit_code.append(daemon.run()), daemon=True)
    thread.start()
    try:
        assert recorder.wait(1)[0] == Trigger("start")
        yield daemon
    finally:
        daemon.stop()
        thread.join(scaled(5))
        assert not thread.is_alive(), "daemon did not stop"
    assert exit_code == [0]
