"""No launched binary can hang its caller: each run has a wall-time limit (`bioconv.simulate.limits`),
past which it is killed and a `RunTimeLimitError` names the project. (No test can hang either: the
per-test timeout of pytest-timeout is set in pyproject.toml.)"""
from __future__ import annotations

import re
import subprocess
import sys
import time

import numpy as np
import pytest
from brian2 import ms, second

import networks
from bioconv.converter import convert
from bioconv.errors import ParameterError, RunTimeLimitError
from bioconv.simulate import limits, runner
from bioconv.simulate.runner import CompiledNetwork

LIMIT_S = 1.0
GRACE_S = 5.0  # the acceptance bound: the error comes within the limit plus this


def _sleeper(seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"])


def test_wait_returns_the_exit_code_of_a_run_within_its_limit():
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    assert limits.wait(proc, 60, "some project") == 3


def test_a_run_past_its_limit_is_killed_and_names_the_project():
    proc = _sleeper(60 * LIMIT_S)
    t0 = time.monotonic()
    with pytest.raises(RunTimeLimitError, match=r"project '/tmp/a project'.* limit of 1 s"):
        limits.wait(proc, LIMIT_S, "/tmp/a project")
    assert LIMIT_S <= time.monotonic() - t0 < LIMIT_S + GRACE_S
    assert proc.poll() is not None  # killed and reaped


def test_the_limit_counts_from_the_launch():
    proc = _sleeper(60 * LIMIT_S)
    t0 = time.monotonic()
    with pytest.raises(RunTimeLimitError):
        limits.wait(proc, LIMIT_S, "p", started=time.monotonic() - LIMIT_S)  # already used up
    assert time.monotonic() - t0 < LIMIT_S


def test_default_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(limits.LIMIT_VARIABLE, raising=False)
    assert limits.default_limit() == limits.DEFAULT_LIMIT_S
    monkeypatch.setenv(limits.LIMIT_VARIABLE, "7.5")
    assert limits.default_limit() == 7.5
    for bad in ("soon", "0", "-3", "inf"):
        monkeypatch.setenv(limits.LIMIT_VARIABLE, bad)
        with pytest.raises(ParameterError, match=limits.LIMIT_VARIABLE):
            limits.default_limit()


@pytest.mark.parametrize("bad", [0, -1, float("nan"), "an hour"])
def test_compiled_network_refuses_a_bad_run_limit(bad):
    snn = convert(networks.graph("single_linear"), np.random.default_rng(0).random((20, 6)))
    with pytest.raises(ParameterError, match="run_limit"):
        CompiledNetwork(snn.mapped, 1, duration=10 * ms, dt=0.1 * ms, run_limit=bad)


@pytest.mark.slow
def test_a_compiled_network_that_outlives_its_limit_raises(monkeypatch):
    snn = convert(networks.graph("single_linear"), np.random.default_rng(0).random((20, 6)))
    launched, real_popen = [], subprocess.Popen

    def popen(*args, **kw):
        launched.append(real_popen(*args, **kw))
        return launched[-1]

    # 10^8 steps: minutes of simulation, far past the limit
    with CompiledNetwork(snn.mapped, 1, duration=1e4 * second, dt=0.1 * ms, threads=1, run_limit=LIMIT_S) as net:
        monkeypatch.setattr(runner.subprocess, "Popen", popen)
        rates = np.full((1, 6), float(snn.mapped.rate_max))
        t0 = time.monotonic()
        with pytest.raises(RunTimeLimitError, match=re.escape(str(net.project))):
            net.run(rates)
        assert time.monotonic() - t0 < LIMIT_S + GRACE_S
    assert len(launched) == 1 and launched[0].poll() is not None  # the binary was killed
