"""Run a sweep on Dask: one task per group of points of one shape, each writing its own Parquet file.

``run(spec, store)`` starts a `distributed.LocalCluster` (workers = available cores, one thread
each; each worker runs one simulation at a time on one core) unless ``scheduler`` names an existing
one (the workers must then import bioconv and see ``store`` and the project cache on a shared
file system). A task reaches a worker as plain data (the level's name, the shape, the canonical
configs): the worker builds, or takes from bioconv's project cache, whatever it needs; it never
needs the client's Brian2 objects. Each worker keeps its build and run folders apart (folders of
its own process under $BIOCONV_BUILD_DIR); compiled projects are shared through the cache.

Resuming: points with a row in ``store`` are skipped, so a re-run after a crash, a kill -9 of the
client or of a worker, or Ctrl-C continues where it stopped.

Retry policy:
1. A task whose evaluation raises is bisected: each half is evaluated again (at the task's size, so
   that the neuron level reuses its compiled project), a half that raises is split again, and a
   single point that still raises becomes an error row carrying the exception's message. At most
   ``RETRY_RUNS`` re-evaluations per task (one bad point among n costs about 2 log2 n); points left
   when they are spent become error rows saying so. A bad point never aborts the sweep.
2. A task whose worker dies is rescheduled by Dask on another worker, up to Dask's
   ``distributed.scheduler.allowed-failures`` times (3 by default); beyond that the client writes
   error rows for its points, naming the failure.
3. A re-run retries the points of error rows (``retry_errors=False`` keeps them), and `load` keeps
   the successful row.
"""
from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager

import dask

from ..errors import BioconvError
from ..simulate.devices import available_cores
from . import level as levels
from . import store as results
from .spec import Spec, Task

logger = logging.getLogger(__name__)

RETRY_RUNS = 64  # re-evaluations of a failed task's parts (bisection), at most

#: Dask settings of the LocalCluster a sweep starts (the nannies pass them to their workers). With as
#: many workers as cores, every simulation binary shares its core with Dask's periodic work, and the
#: defaults sample each worker's running task every 10 ms (`Worker.trigger_profile`, for the
#: dashboard this cluster does not serve), check the event loops every 20 ms and the memory every
#: 100 ms: each binary of a 2-worker sweep was preempted ~3000 times in a 14 s run (50 times with one
#: worker), 700-950 times with these. Timeouts, heartbeats and work stealing keep their defaults.
QUIET_CLUSTER = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "1s",
}


class SchedulerError(BioconvError, ConnectionError):
    """The Dask scheduler named by the user cannot be reached."""


def run(spec: Spec, store, *, scheduler: str | None = None, workers: int | None = None, retry_errors: bool = True,
        progress: bool = True, connect_timeout: float = 10.0, allow_other_spec: bool = False):
    """Evaluate every point of ``spec`` not yet in ``store``; return `load(store)` (a DataFrame).

    ``scheduler``: address of an existing Dask scheduler (``tcp://host:8786``); None starts a
    LocalCluster of ``workers`` processes (default: the available cores), one thread each.
    ``connect_timeout``: seconds to reach ``scheduler`` before `SchedulerError`.
    ``allow_other_spec``: write into a store that holds another spec's rows (refused by default:
    `store.StoreSpecError`).
    """
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"sweep: workers must be a positive integer, got {workers!r}")
    results.write_spec(store, dict(spec.describe(), spec_hash=spec.spec_hash), allow_other=allow_other_spec)
    done = results.finished(store, errors=not retry_errors)
    if spec.tasks(done):
        with _client(scheduler, workers, connect_timeout) as client:
            n_workers = max(1, len(client.scheduler_info().get("workers", {}))) if scheduler else \
                (workers or available_cores())
            tasks = spec.tasks(done, workers=n_workers)
            left = sum(len(t.hashes) for t in tasks)
            _submit_and_wait(client, tasks, store, total=len(spec), left=left, progress=progress, name=spec.name)
    return results.load(store)


@contextmanager
def _client(scheduler, workers, connect_timeout):
    from distributed import Client, LocalCluster
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=connect_timeout)
        except (OSError, TimeoutError) as err:
            raise SchedulerError(f"cannot reach the Dask scheduler at {scheduler!r} within {connect_timeout:g} s: "
                                 f"{err}") from None
        try:
            yield client
        finally:
            client.close(timeout=connect_timeout)
        return
    n = workers or available_cores()
    # One thread per worker process, and one OpenMP thread per simulation: the workers are the parallelism.
    env = {"BIOCONV_THREADS": "1", "OMP_NUM_THREADS": "1"}
    # The scheduler's HTTP server (health checks) always starts: on a free port, without the dashboard.
    # The settings enclose the cluster's whole life: a nanny reads the global configuration when it
    # restarts a worker that died (its config is a view of it, not a copy).
    with dask.config.set(QUIET_CLUSTER), \
            LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": False},
                         env=env, silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        yield client


def _submit_and_wait(client, tasks: list[Task], store, *, total: int, left: int, progress: bool, name: str):
    from distributed import as_completed
    from tqdm.auto import tqdm
    store = str(os.path.abspath(store))
    futures = {}
    for task in tasks:
        configs, hashes = task.configs, task.hashes
        if len(configs) > 1000:  # large tasks travel as data of their own, not inside the task graph
            [configs, hashes] = client.scatter([configs, hashes])
        fut = client.submit(run_task, task.level, task.structure, configs, hashes, task.size,
                            task.task_id, store, task.names, key=f"bioconv-sweep-{task.task_id}", pure=False)
        futures[fut] = task
    bar = tqdm(total=total, initial=total - left, unit="point", desc=f"sweep {name}", disable=not progress)
    try:
        for fut in as_completed(futures):
            task = futures[fut]
            try:
                summary = fut.result()
                if summary["errors"]:
                    logger.warning("sweep %s: %d of %d point(s) of task %s failed (error rows written)", name,
                                   summary["errors"], summary["points"], task.task_id)
            except Exception as err:  # the task itself failed on the cluster (e.g. its workers kept dying)
                logger.warning("sweep %s: task %s failed on the cluster: %r", name, task.task_id, err)
                _error_rows(task, store, f"the task failed on the Dask cluster: {type(err).__name__}: {err}")
            bar.update(len(task.hashes))
            bar.set_postfix(left=bar.total - bar.n)
    finally:
        bar.close()
        for fut in futures:
            fut.cancel()


def run_task(level_name: str, structure: dict, configs: list[dict], hashes: list[str], size: int, task_id: str,
             store: str, names=None) -> dict:
    """Evaluate one task's points (on a Dask worker) and write their rows; returns a summary.
    ``names``: the per-point parameter names of the task's whole shape (for levels that take them)."""
    logging.getLogger("brian2").setLevel(logging.WARNING)  # a worker's console is for problems, not method choices
    level = levels.get(level_name)
    kwargs = {"size": size}
    if getattr(level, "takes_shape_names", False) and names is not None:
        kwargs["names"] = tuple(names)

    def evaluate(part):
        metrics = level.evaluate(structure, part, **kwargs)
        if len(metrics) != len(part):
            raise RuntimeError(f"level {level_name!r} returned {len(metrics)} rows for {len(part)} points")
        return metrics

    started = time.time()
    try:
        metrics = evaluate(configs)
    except Exception as err:  # policy 1: bisect, so that one bad point does not take the others with it
        metrics = _bisect(evaluate, configs, err, RETRY_RUNS)
    finished = time.time()
    rows = [_row(c, h, m, task_id, started, finished) for c, h, m in zip(configs, hashes, metrics)]
    results.write_rows(store, task_id, rows, _units(level, structure))
    return {"task_id": task_id, "points": len(rows), "errors": sum(r["status"] == "error" for r in rows)}


def _bisect(evaluate, configs: list, err: Exception, budget: int) -> list[dict]:
    """Metrics of ``configs`` whose evaluation raised ``err``: halves evaluated again, a failing half
    split again, down to single points (error rows); at most ``budget`` evaluations in all."""
    out: list = [None] * len(configs)
    todo = [(0, len(configs), err)]  # (lo, hi, the error of evaluating configs[lo:hi])
    runs = 0
    while todo:
        lo, hi, e = todo.pop()
        if hi - lo == 1:
            out[lo] = {"error": f"{type(e).__name__}: {e}"}
            continue
        mid = (lo + hi) // 2
        for a, b in ((mid, hi), (lo, mid)):
            if runs >= budget:
                for k in range(a, b):
                    out[k] = {"error": f"not retried (the retry budget of {budget} runs for this task is spent); "
                                       f"the task failed with {type(e).__name__}: {e}"}
                continue
            runs += 1
            try:
                out[a:b] = evaluate(configs[a:b])
            except Exception as sub:
                todo.append((a, b, sub))
    return out


def _row(config, h, metrics, task_id, started, finished) -> dict:
    metrics = dict(metrics)
    error = metrics.pop("error", None)
    row = {"config_hash": h, "status": "error" if error else "ok", "error": error}
    row.update(config)
    row.update({k: v for k, v in metrics.items() if k not in row})
    row.update(results.provenance())
    row.update(task_id=task_id, worker_pid=os.getpid(), started_at=started, finished_at=finished,
               task_wall_s=finished - started)
    return row


def _units(level, structure) -> dict[str, str]:
    params = dict(level.structural())
    try:
        params.update(level.parameters(structure))
    except Exception:  # the units are for the record; a level that cannot list them still writes rows
        pass
    return {name: p.unit for name, p in params.items() if p.kind == "quantity"}


def _error_rows(task: Task, store, message: str):
    now = time.time()
    rows = [_row(c, h, {"error": message}, task.task_id, now, now) for c, h in zip(task.configs, task.hashes)]
    results.write_rows(store, task.task_id, rows, _units(levels.get(task.level), task.structure))
