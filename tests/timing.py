"""How long tests wait, on this machine: every timeout, deadline and settling sleep in the tests (and
in scripts/demo.py) goes through `scaled`, so that a slow machine sets one factor instead of each test
guessing. The kernel matrix (`make test-kernels`) sets BPFUNITS_TEST_TIME_FACTOR in its VMs: under
qemu TCG a bpfunits CLI call takes 30-90 times as long as natively. Default 1: the host suite waits
exactly what the tests say.
"""

from __future__ import annotations

import os

FACTOR = float(os.environ.get("BPFUNITS_TEST_TIME_FACTOR") or 1)


def scaled(seconds: float) -> float:
    """`seconds` on a normal machine, stretched by the factor this run was given."""
    return seconds * FACTOR
