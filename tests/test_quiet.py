"""Quiet by default (bioconv.simulate.quiet): the Python API keeps Brian2's INFO lines about bioconv's
own objects off the console, leaves the user's Brian2 preferences as they were, and prints them
again with BIOCONV_VERBOSE=1."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

CODE = """
import sys
sys.path.insert(0, {tests!r})
import numpy as np
from brian2 import ms, prefs
import bioconv, networks
snn = bioconv.convert(networks.graph("single_linear"), np.random.default_rng(0).random((5, 6)))
snn.evaluate(np.random.default_rng(1).random((2, 6)), np.array([0, 1]), duration=2 * ms, device="runtime",
             progress=False)
print("console level", prefs.logging.console_log_level)
"""


@pytest.mark.parametrize("verbose", ["", "1"])
def test_brian2_info_lines_only_when_asked(verbose):
    env = dict(os.environ, BIOCONV_VERBOSE=verbose)
    out = subprocess.run([sys.executable, "-c", CODE.format(tests=str(Path(__file__).parent))], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "console level INFO" in out.stdout  # the user's preference is untouched
    assert ("No numerical integration method specified" in out.stderr) == bool(verbose), out.stderr
