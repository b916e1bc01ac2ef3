# Fixtures shared by the suite live in tests/fixtures/, one module per concept.
from hypothesis import Phase, settings

pytest_plugins = [
    "tests.fixtures.bpffs",
    "tests.fixtures.netns",
    "tests.fixtures.objects",
    "tests.fixtures.counters",
    "tests.fixtures.features",
]

# `--hypothesis-profile=matrix`: the kernel matrix's VMs (qemu TCG, tens of times slower) run the
# linker's differential tests with fewer examples (tests that set their own max_examples cap it at
# the profile's: min(N, settings.default.max_examples)), and report a failing example unshrunk:
# shrinking there would take longer than the whole run may.
settings.register_profile("matrix", max_examples=8, phases=[Phase.explicit, Phase.reuse, Phase.generate])
