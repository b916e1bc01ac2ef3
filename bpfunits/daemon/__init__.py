"""`bpfunits daemon`: when to reconcile (file, netlink, timer and signal events), and sd_notify."""

from bpfunits.daemon.batch import DEFAULT_DEBOUNCE
from bpfunits.daemon.loop import Daemon, Settings
from bpfunits.daemon.notify import Notifier
from bpfunits.daemon.trigger import Trigger

__all__ = ["DEFAULT_DEBOUNCE", "Daemon", "Notifier", "Settings", "Trigger"]
