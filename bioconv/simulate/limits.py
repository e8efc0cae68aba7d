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


def wait(proc: subprocess.Popen, limit_s: float, project, *, started: float | None = None,
         usage: dict | None = None) -> int:
    """Wait for ``proc`` at most ``limit_s`` seconds (counted from ``started``, a `time.monotonic`
    reading taken at its launch; default: now) and return its exit code. Past the limit, kill it and
    raise `RunTimeLimitError` naming ``project`` (the folder of the binary) and the limit.
    ``usage``: a dict that receives the process's peak resident memory (``maxrss_bytes``) where
    Linux's /proc gives it (left empty elsewhere)."""
    limit_s = check_limit(limit_s, "limits.wait: limit_s")
    start = time.monotonic() if started is None else float(started)
    if usage is not None and os.path.exists(f"/proc/{proc.pid}/status"):
        return _wait_with_usage(proc, start + limit_s, limit_s, project, usage)
    try:
        return proc.wait(timeout=max(0.0, start + limit_s - time.monotonic()))
    except subprocess.TimeoutExpired:
        _kill(proc, limit_s, project)


def _wait_with_usage(proc, deadline, limit_s, project, usage) -> int:
    """`wait`, polling the process's own high-water mark of resident memory (VmHWM) until it exits.
    Not the rusage of the reaped child: Linux carries the parent's peak into a child's ru_maxrss when
    the child execs (Python's vfork), so a small binary launched from a large Python process would
    report the Python process's memory."""
    delay, begun = 0.0005, deadline - limit_s
    while proc.poll() is None:
        peak = _vm_hwm(proc.pid)
        if peak is not None:
            usage["maxrss_bytes"] = max(usage.get("maxrss_bytes", 0), peak)
        if time.monotonic() >= deadline:
            _kill(proc, limit_s, project)
        time.sleep(delay)
        # every 20 ms at first; a long run is polled every 1 % of its time so far, at most every 0.1 s
        # (a sweep's worker polling every 20 ms took ~3 % of a core from the simulations)
        delay = min(2 * delay, max(0.02, min(0.1, 0.01 * (time.monotonic() - begun))))
    return proc.returncode


def _vm_hwm(pid: int) -> int | None:
    """The peak resident memory (bytes) of a running process, from /proc/<pid>/status."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _kill(proc, limit_s, project):
    proc.kill()
    proc.wait()  # reap it: no zombie, and its output files are closed
    raise RunTimeLimitError(
        f"the simulation binary of project {str(project)!r} ran past its wall-time limit of {limit_s:g} s "
        f"and was killed (raise the limit with ${LIMIT_VARIABLE} or the caller's run_limit if the run "
        f"is just long)") from None
