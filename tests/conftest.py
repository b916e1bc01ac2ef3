# Fixtures shared by the suite live in tests/fixtures/, one module per concept.
import os

import pytest
from hypothesis import Phase, settings

pytest_plugins = [
    "tests.fixtures.bpffs",
    "tests.fixtures.netns",
    "tests.fixtures.objects",
    "tests.fixtures.counters",
    "tests.fixtures.features",
    "tests.fixtures.reconciler",
]

# `--hypothesis-profile=matrix`: the kernel matrix's VMs (qemu TCG, tens of times slower) run the
# linker's differential tests with fewer examples (tests that set their own max_examples cap it at
# the profile's: min(N, settings.default.max_examples)), and report a failing example unshrunk:
# shrinking there would take longer than the whole run may.
settings.register_profile("matrix", max_examples=8, phases=[Phase.explicit, Phase.reuse, Phase.generate])

NOT_ROOT = {
    "kernel": "needs root (a BPF-capable kernel, bpffs and network namespaces): run the suite as root, "
    "or leave these out with `pytest -m \"not kernel and not root\"`",
    "root": "needs root (installing the package, chown, switching users): run the suite as root, "
    "or leave these out with `pytest -m \"not kernel and not root\"`",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without root, the tests marked `kernel` or `root` are skipped, each saying why, instead of failing."""
    if os.geteuid() == 0:
        return
    for item in items:
        for marker, reason in NOT_ROOT.items():
            if item.get_closest_marker(marker) is not None:
                item.add_marker(pytest.mark.skip(reason=reason))
                break
