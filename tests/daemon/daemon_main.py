"""`python -m tests.daemon.daemon_main FOLDER`: a real daemon process for the signal tests.

Its reconcile returns the trigger, and STATUS= carries it, so the test sees every reconcile on
its sd_notify socket ($NOTIFY_SOCKET, as systemd would set it).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from bpfunits.daemon import Daemon, Trigger


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    daemon = Daemon(
        reconcile=lambda trigger: trigger,
        folders=[Path(sys.argv[1])],
        resync_period=60.0,
        status=lambda trigger: f"reconciled: {trigger}" if isinstance(trigger, Trigger) else "?",
    )
    return daemon.run()


if __name__ == "__main__":
    sys.exit(main())
