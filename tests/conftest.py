# Fixtures shared by the suite live in tests/fixtures/, one module per concept.
pytest_plugins = [
    "tests.fixtures.bpffs",
    "tests.fixtures.netns",
    "tests.fixtures.objects",
    "tests.fixtures.counters",
    "tests.fixtures.features",
]
