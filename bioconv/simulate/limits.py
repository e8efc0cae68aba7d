"""Wall-time limits on launched simulation binaries: a hung or runaway run fails loudly instead of
hanging its caller (or CI).

    proc = subprocess.Popen(cmd, ...)
    rc = limits.wait(proc, limits.default_limit(), project_folder)  # RunTimeLimitError past the limit
"""
from __future__ import annotations

import math
import os
import subprocess
import time

from ..errors import ParameterError, RunTimeLimitError

#: Environment variable holding the default limit, in seconds.
LIMIT_VARIABLE = "BIOCONV_RUN_LIMIT"
#: Default limit (s) when the variable is not set: well above a full study's longest run, and an
#: hour is still short enough that a hung CI job fails the same day.
DEFAULT_LIMIT_S = 3600.0


def check_limit(limit_s, where: str) -> float:
    """``limit_s`` as a positive number of seconds; None gives `default_limit`."""
    if limit_s is None:
        return default_limit()
    try:
        value = float(limit_s)
    except (TypeError, ValueError):
        raise ParameterError(f"{where} must be a number of seconds, got {limit_s!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise ParameterError(f"{where} must be a positive, finite number of seconds, got {limit_s!r}")
    return value


def default_limit() -> float:
    """The wall-time limit of one run of a simulation binary: ${LIMIT_VARIABLE} seconds if set, else
    `DEFAULT_LIMIT_S`."""
    env = os.environ.get(LIMIT_VARIABLE)
    if env is None or not env.strip():
        return DEFAULT_LIMIT_S
    return check_limit(env, f"${LIMIT_VARIABLE}")


def wait(proc: subprocess.Popen, limit_s: float, project, *, started: float | None = None) -> int:
    """Wait for ``proc`` at most ``limit_s`` seconds (counted from ``started``, a `time.monotonic`
    reading taken at its launch; default: now) and return its exit code. Past the limit, kill it and
    raise `RunTimeLimitError` naming ``project`` (the folder of the binary) and the limit."""
    limit_s = check_limit(limit_s, "limits.wait: limit_s")
    start = time.monotonic() if started is None else float(started)
    try:
        return proc.wait(timeout=max(0.0, start + limit_s - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()  # reap it: no zombie, and its output files are closed
        raise RunTimeLimitError(
            f"the simulation binary of project {str(project)!r} ran past its wall-time limit of {limit_s:g} s "
            f"and was killed (raise the limit with ${LIMIT_VARIABLE} or the caller's run_limit if the run "
            f"is just long)") from None
