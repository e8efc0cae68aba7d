"""Test-wide settings."""
import os

# Tests run in parallel workers (pytest -n 2): one OpenMP thread per simulation unless a test asks
# for more, so that workers do not spin against each other at OpenMP barriers.
os.environ.setdefault("BIOCONV_THREADS", "1")
