# The real daemon process fixture of test_daemon.py, for the other end-to-end daemon tests here.
from tests.kernel.test_daemon import daemon  # noqa: F401
