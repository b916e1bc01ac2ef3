"""The daemon's state file: what `status` cannot read from the kernel. Today that is the hooks
that keep failing, how often, the last error and when the daemon tries again.

Written whole after each reconcile (a temporary file renamed into place, so a reader sees one
version or the other); read by `status` only while the daemon that wrote it runs, for the
network namespace it reconciles.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from bpfunits import atomicfile
from bpfunits.errors import BpfUnitsError
from bpfunits.hooks import Hook
from bpfunits.order.graph import HookKey
from bpfunits.reconcile.memory import Retry
from bpfunits.reconcile.status import Retrying
from bpfunits.untrusted import FileMissing, UntrustedFileError, read_untrusted

VERSION = 1
MAX_SIZE = 16 << 20  # a line per failing hook: far more than any node has


def write(path: Path, netns_inode: int, retries: dict[HookKey, Retry]) -> None:
    """Replace the state file with this reconcile's view (OSError when that fails)."""
    shift = time.time() - time.monotonic()
    document = {
        "version": VERSION,
        "pid": os.getpid(),
        "netns": netns_inode,
        "written": time.time(),
        "retries": [{"interface": k.interface, "hook": k.hook.value, "failures": r.failures,
                     "next_try": r.at + shift, "error": r.error} for k, r in sorted(retries.items())],
    }
    atomicfile.replace(path, json.dumps(document).encode(), mode=0o644)


def read(path: Path, netns_inode: int, *, strict: bool) -> dict[HookKey, Retrying]:
    """The failing hooks of the daemon reconciling namespace `netns_inode`: none when no such
    daemon runs (no file, or one a daemon that is gone left, or about another namespace).
    BpfUnitsError when the file cannot be trusted or read."""
    try:
        document = json.loads(read_untrusted(path, MAX_SIZE, strict=strict))
        if document.get("version") != VERSION or document.get("netns") != netns_inode:
            return {}
        if not _alive(int(document["pid"])):
            return {}
        return {HookKey(r["interface"], Hook(r["hook"])): Retrying(int(r["failures"]), float(r["next_try"]),
                                                                    str(r["error"]))
                for r in document["retries"]}
    except FileMissing:
        return {}  # no daemon has run here
    except UntrustedFileError as e:
        raise BpfUnitsError(f"the daemon's state file is not read: {e}") from e
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise BpfUnitsError(f"{path}: not a bpfunits daemon state file: {e}") from e


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
