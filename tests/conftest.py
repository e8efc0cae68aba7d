"""Test-wide settings."""
import os
import shutil
import tempfile

# Tests run in parallel workers (pytest -n 2): one OpenMP thread per simulation unless a test asks
# for more, so that workers do not spin against each other at OpenMP barriers.
os.environ.setdefault("BIOCONV_THREADS", "1")
# Compiled projects go to a cache of this test session (shared by its workers, removed at the end),
# not to the user's: every session starts from cold, and tests that need a fresh build still find one.
_CACHE = None
if "BIOCONV_PROJECT_CACHE_DIR" not in os.environ:
    _CACHE = tempfile.mkdtemp(prefix="bioconv-test-cache-")
    os.environ["BIOCONV_PROJECT_CACHE_DIR"] = _CACHE

# Imported here, in the main thread of every pytest process: pytest-xdist's controller imports the
# module of a warning category a worker reports (bioconv's NIRExportWarning, ...) from a thread of
# its own, and importing brian2 >= 2.9 there fails (it installs a SIGINT handler, which only the main
# thread may do), crashing the worker. Already imported, it is not imported again.
import brian2  # noqa: E402,F401


def pytest_unconfigure(config):
    if _CACHE is not None and not hasattr(config, "workerinput"):  # the controller, after its workers
        shutil.rmtree(_CACHE, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """Slow tests first (stable order otherwise): the two workers then finish at about the same time
    instead of one waiting on a long build at the end."""
    def rank(item):
        if item.name.startswith("test_cuda_"):  # the longest by far (nvcc, 1.5-4 min): start it at once
            return 0
        return 1 if item.get_closest_marker("slow") else 2
    items.sort(key=rank)
