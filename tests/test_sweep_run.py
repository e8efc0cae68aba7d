"""Running sweeps: the Parquet store (round trip, provenance, skip finished, error rows), the Dask
runner (LocalCluster, an unreachable scheduler, resuming), kill -9 of the client and of a worker
mid-sweep, and the neuron level against the analytic LIF rate.

The machinery tests use a cheap deterministic level of their own (tests/sweep_fake.py), run in
subprocesses with timeouts where something is killed; every LocalCluster is closed by `run`."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from brian2 import mV, ms, nS, pA, pF, second

from bioconv import analysis, sweep
from bioconv.sweep import runner, store

import sweep_fake

FAKE = "sweep_fake:LEVEL"
TESTS = Path(__file__).resolve().parent


def _fake_spec(xs_mV, **kw):
    return sweep.Spec(level=FAKE, grid={"x": list(xs_mV) * mV, "mode": ["a", "b"]}, **kw)


def _run_tasks_here(spec, path):
    """Every task of ``spec`` through `runner.run_task`, in this process (what a worker does)."""
    for t in spec.tasks(store.finished(path, errors=True)):
        runner.run_task(t.level, t.structure, t.configs, t.hashes, t.size, t.task_id, str(path), t.names)


def test_store_round_trip_with_provenance_units_and_error_rows(tmp_path):
    spec = _fake_spec([1, 2, 13, 4], points_per_task=4)
    _run_tasks_here(spec, tmp_path)
    df = sweep.load(tmp_path)
    assert sorted(df.config_hash) == sorted(spec.hashes)
    ok, bad = df[df.status == "ok"], df[df.status == "error"]
    # the bad point (x = 13 mV) failed alone: the other points of its task have their values
    assert len(bad) == 2 and np.allclose(bad.x, sweep_fake.BAD_X)
    assert bad.error.str.contains("ValueError: x = 0.013 V is the bad value").all()
    expected = ok.x * ok.gain + np.where(ok["mode"] == "b", 10.0, 0.0)
    assert np.allclose(ok.y, expected)
    assert df.attrs["units"]["x"] == "volt"
    for col in ("bioconv_version", "brian2_version", "python_version", "pin", "host", "git_commit", "task_id"):
        assert col in df.columns
    assert (df.brian2_version == __import__("brian2").__version__).all()
    assert len(list((tmp_path / "rows").glob("task-*.parquet"))) == 2  # one file per task (two shapes)
    assert not list((tmp_path / "rows").glob(".*tmp"))


def test_an_error_row_first_in_its_task_drops_no_column_of_the_rows_after_it(tmp_path):
    """A task's Parquet file takes its columns from every row: with the failing point first, the
    points after it keep their results (and stay finished, so a re-run does not skip them blind)."""
    spec = _fake_spec([13, 1, 2], points_per_task=3)
    _run_tasks_here(spec, tmp_path)
    df = sweep.load(tmp_path)
    ok = df[df.status == "ok"]
    assert len(ok) == 4 and "y" in df.columns and ok.y.notna().all()
    assert np.allclose(ok.y, ok.x * ok.gain + np.where(ok["mode"] == "b", 10.0, 0.0))


def test_finished_points_are_skipped_and_error_rows_retried_and_load_keeps_one_row_each(tmp_path):
    spec = _fake_spec([1, 13], points_per_task=1)
    _run_tasks_here(spec, tmp_path)
    files = {p: p.stat().st_mtime_ns for p in (tmp_path / "rows").glob("task-*.parquet")}
    assert len(store.finished(tmp_path)) == 2 and len(store.finished(tmp_path, errors=True)) == 4
    assert spec.tasks(store.finished(tmp_path, errors=True)) == []
    left = spec.tasks(store.finished(tmp_path))  # the error points, to retry
    assert sorted(h for t in left for h in t.hashes) == sorted(sweep.load(tmp_path).query("status == 'error'").config_hash)
    assert {p: p.stat().st_mtime_ns for p in files} == files  # nothing rewritten


@pytest.mark.slow
def test_dask_sweep_resumes_and_gives_one_row_per_point(tmp_path):
    spec = _fake_spec([1, 2, 3, 13], points_per_task=2)
    df = sweep.run(spec, tmp_path, workers=2, progress=False)
    assert len(df) == 8 and set(df.config_hash) == set(spec.hashes)
    assert (df.status == "error").sum() == 2
    assert df.worker_pid.nunique() >= 1 and (df.worker_pid != os.getpid()).all()  # ran on the workers
    before = {p.name for p in (tmp_path / "rows").glob("task-*.parquet")}
    again = sweep.run(spec, tmp_path, workers=1, progress=False, retry_errors=False)  # nothing left: no cluster
    assert {p.name for p in (tmp_path / "rows").glob("task-*.parquet")} == before
    pd.testing.assert_frame_equal(again, df)


@pytest.mark.slow
def test_a_sweep_runs_on_an_existing_scheduler_given_by_address(tmp_path):
    from distributed import Client, LocalCluster
    spec = _fake_spec([1, 2], points_per_task=1)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": False}) as cluster:
        df = sweep.run(spec, tmp_path, scheduler=cluster.scheduler_address, progress=False)
        with Client(cluster) as client:
            pids = set(client.run(os.getpid).values())
    assert len(df) == 4 and (df.status == "ok").all()
    assert set(df.worker_pid) <= pids  # computed by that cluster's worker


def test_an_unreachable_scheduler_is_named_within_the_timeout(tmp_path):
    spec = _fake_spec([1])
    t0 = time.monotonic()
    with pytest.raises(sweep.SchedulerError, match=r"cannot reach the Dask scheduler at 'tcp://127.0.0.1:9' within 2 s"):
        sweep.run(spec, tmp_path, scheduler="tcp://127.0.0.1:9", connect_timeout=2)
    assert time.monotonic() - t0 < 30


# ---------------------------------------------------------------------------- kill -9 mid-sweep
_CONFIG = """
level = "sweep_fake:LEVEL"
points_per_task = 1
[grid]
x = [{xs}]
mode = ["a", "b"]
"""


def _cli(config, out, env, workers):
    return subprocess.Popen([sys.executable, "-m", "bioconv.cli", "sweep", str(config), "--out", str(out),
                             "--workers", str(workers)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _env(tmp_path, delay):
    env = dict(os.environ, SWEEP_FAKE_DELAY=str(delay), SWEEP_FAKE_LOG=str(tmp_path / "pids.log"),
               PYTHONPATH=os.pathsep.join([str(TESTS)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    return env


def _wait_rows(out, n, proc, timeout=120):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if len(list((Path(out) / "rows").glob("task-*.parquet"))) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the sweep ended before {n} rows:\n{proc.stdout.read().decode()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"no {n} rows within {timeout} s")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purpose
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _finish(proc, timeout=180):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return proc.returncode, out.decode()


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["client", "worker"])
def test_kill_9_mid_sweep_then_rerun_gives_one_row_per_point_with_uninterrupted_values(tmp_path, victim):
    xs = [1, 2, 3, 4, 5, 6, 7, 8]
    config = tmp_path / "config.toml"
    config.write_text(_CONFIG.format(xs=", ".join(f'"{x} mV"' for x in xs)))
    spec = sweep.Spec.from_toml(config)
    out = tmp_path / "store"
    proc = _cli(config, out, _env(tmp_path, 0.3), workers=2)
    try:
        _wait_rows(out, 3, proc)
        if victim == "client":
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            # its workers notice and exit (they would otherwise write rows behind the re-run's back)
            pids = {int(p) for p in (tmp_path / "pids.log").read_text().split()}
            deadline = time.monotonic() + 30
            while any(_alive(p) for p in pids) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not any(_alive(p) for p in pids)
        else:  # a worker process in the middle of a task: it logged its pid when the task began
            pids = {int(p) for p in (tmp_path / "pids.log").read_text().split()}
            os.kill(max(pids), signal.SIGKILL)
            rc, log = _finish(proc)
            assert rc == 0, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    first = len(list((out / "rows").glob("task-*.parquet")))
    assert first < len(spec) or victim == "worker"
    rc, log = _finish(_cli(config, out, _env(tmp_path, 0.0), workers=1))
    assert rc == 0, log
    df = sweep.load(out)
    assert sorted(df.config_hash) == sorted(spec.hashes)  # exactly one row per point
    raw = pd.concat([pd.read_parquet(p) for p in (out / "rows").glob("task-*.parquet")])
    assert raw.config_hash.is_unique  # and no duplicate in the files either
    # the values of an uninterrupted sweep: the level's own function of each point
    ref = pd.DataFrame(sweep_fake.LEVEL.evaluate({"mode": "a"}, [c for c in spec.configs if c["mode"] == "a"]) +
                       sweep_fake.LEVEL.evaluate({"mode": "b"}, [c for c in spec.configs if c["mode"] == "b"]))
    ref["config_hash"] = [h for c, h in zip(spec.configs, spec.hashes) if c["mode"] == "a"] + \
                         [h for c, h in zip(spec.configs, spec.hashes) if c["mode"] == "b"]
    got = df.set_index("config_hash").y.sort_index()
    assert (df.status == "ok").all()
    assert np.array_equal(got.values, ref.set_index("config_hash").y.sort_index().values)


# ---------------------------------------------------------------------------- the neuron level
@pytest.mark.slow
def test_neuron_sweep_rates_match_lif_rate_and_tasks_share_one_compiled_project(tmp_path):
    spec = sweep.Spec(level="neuron", grid={"Cm": [100, 200] * pF, "gl": [5, 10] * nS, "tau_ref": [1, 2] * ms,
                                            "I_bias": [300, 1000] * pA},
                      fixed={"dt": 0.01 * ms, "T": 0.5 * second}, points_per_task=8)
    df = sweep.run(spec, tmp_path, workers=1, progress=False)
    assert (df.status == "ok").all() and len(df) == 16
    assert df.task_id.nunique() == 2 and df.cache_hit.sum() == 8  # the second task reused the first one's project
    expected = analysis.lif_rate(df.I_bias.values * 1e12 * pA, df.Cm.values * 1e12 * pF, df.gl.values * 1e9 * nS,
                                 -70 * mV, -50 * mV, -70 * mV, df.tau_ref.values * 1e3 * ms)
    assert np.allclose(df.analytic_rate_Hz, np.asarray(expected))
    many = df[df.n_spikes >= 20]
    assert len(many) >= 12
    assert (many.isi_rate_Hz / many.analytic_rate_Hz - 1).abs().max() < 0.01


# ---------------------------------------------------------------------------- the network level
@pytest.mark.slow
def test_network_sweep_point_at_the_mappings_values_equals_snn_evaluate(tmp_path):
    spec = sweep.Spec(level="sweep_fake:NETWORK", grid={"Cm": [100, 60] * pF, "tau_ref": [0, 2] * ms},
                      fixed={"n_test": 6, "n_calibration": 40, "T": 50 * ms})
    _run_tasks_here(spec, tmp_path)
    df = sweep.load(tmp_path)
    assert (df.status == "ok").all() and len(df) == 4, df.error.tolist()
    snn, x, y = sweep_fake.small_network(network="mlp", n_test=6, n_calibration=40, normalization="p99.9",
                                         bias="current", reset="linear", synapse="delta")
    assert float(snn.mapped.populations[1].params["Cm"]) == pytest.approx(100e-12)  # the mapping's Cm
    ref = snn.evaluate(x, y, duration=50 * ms, dt=0.1 * ms, encoder="regular", device="cpp")
    same = df[np.isclose(df.Cm, 100e-12, rtol=1e-9, atol=0) & (df.tau_ref == 0)].iloc[0]
    assert same.accuracy == ref.accuracy and same.agreement == ref.agreement
    assert same.synaptic_events == ref.synaptic_events
    assert {c for c in df.columns if c.startswith("corr/")} == {f"corr/{p}" for p in ref.layer_correlation}
    assert df.synaptic_events.nunique() > 1  # the other points moved something


# ---------------------------------------------------------------------------- review fixes
def test_a_failed_task_is_bisected_so_one_bad_point_costs_few_runs_and_others_keep_their_values(tmp_path,
                                                                                                 monkeypatch):
    calls = []
    real = sweep_fake.FakeLevel.evaluate

    def counted(self, structure, points, *, size=None):
        calls.append((len(points), size))
        return real(self, structure, points, size=size)
    monkeypatch.setattr(sweep_fake.FakeLevel, "evaluate", counted)
    xs = [1, 2, 3, 4, 5, 6, 7, 13] + list(range(20, 36))  # 24 points, one bad
    spec = sweep.Spec(level=FAKE, grid={"x": xs * mV}, points_per_task=len(xs))
    _run_tasks_here(spec, tmp_path)
    df = sweep.load(tmp_path)
    assert len(df) == 24 and (df.status == "error").sum() == 1
    assert df[df.status == "error"].x.iloc[0] == pytest.approx(0.013)
    assert len(calls) <= 1 + 2 * 5  # not 1 + 24 point-by-point runs
    assert all(size == 24 for _, size in calls)  # every retry reuses the task's size (its compiled project)


def test_the_retry_budget_is_capped_and_says_so_in_the_error_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "RETRY_RUNS", 2)
    spec = sweep.Spec(level=FAKE, grid={"x": [13, 1, 2, 3, 4, 5, 6, 7] * mV}, points_per_task=8)
    _run_tasks_here(spec, tmp_path)
    df = sweep.load(tmp_path)
    assert len(df) == 8 and (df.status == "ok").sum() == 4  # the good half, then the budget is spent
    assert df.error.str.contains("retry budget of 2 runs").sum() == 4  # the failed half, bad point included


def test_a_store_refuses_another_spec_by_name_unless_allowed(tmp_path):
    spec = _fake_spec([1, 2], points_per_task=4)

    store.write_spec(tmp_path, dict(spec.describe(), spec_hash=spec.spec_hash))
    store.write_spec(tmp_path, dict(spec.describe(), spec_hash=spec.spec_hash))  # the same spec: fine
    other = _fake_spec([1, 3], points_per_task=4)
    with pytest.raises(store.StoreSpecError, match=str(tmp_path)):
        sweep.run(other, tmp_path, progress=False)
    store.write_spec(tmp_path, dict(other.describe(), spec_hash=other.spec_hash), allow_other=True)


def test_neuron_level_marks_only_the_points_whose_v_diverged(monkeypatch):
    from bioconv.sweep import neuron
    spec = sweep.Spec(level="neuron", grid={"I_bias": [500, 600, 700] * pA}, fixed={"T": 0.1 * second})

    def fake_run(structure, model, values, run_limit=None):
        n = len(values["I_bias"])
        v = np.zeros(n)
        v[1] = np.nan
        return np.full(n, 5), np.full(n, 0.005), np.full(n, 0.01), np.full(n, 0.05), {
            "cache_hit": True, "build_s": 0.0, "run_s": 0.0, "v_finite": np.isfinite(v)}
    monkeypatch.setattr(neuron, "run_points", fake_run)
    t = spec.tasks()[0]
    rows = neuron.NeuronLevel().evaluate(t.structure, t.configs, size=t.size)
    assert "error" not in rows[0] and "error" not in rows[2] and rows[0]["n_spikes"] == 5
    assert "NaN or infinite membrane potential" in rows[1]["error"] and "I_bias" in rows[1]["error"]


def test_network_points_beyond_the_mappings_limits_become_error_rows_and_the_build_is_the_shapes(tmp_path):
    from bioconv.sweep.network import NetworkLevel
    seen = []

    def fake_evaluate(snn, x, y, points, *, sweepable=None, **kw):
        seen.append((len(points), tuple(sweepable or ())))
        return [{"accuracy": 1.0} for _ in points]
    level = NetworkLevel(evaluate_points=fake_evaluate, load_network=sweep_fake.small_network)
    structure = sweep.Spec(level="sweep_fake:NETWORK", points=[{"tau_ref": 1 * ms}],
                           fixed={"n_test": 4, "n_calibration": 20}).tasks()[0].structure
    snn, _, _ = sweep_fake.small_network(**{k: structure[k] for k in ("network", "n_test", "n_calibration",
                                                                      "normalization", "bias", "reset", "synapse")})
    too_long = 1.5 / float(snn.mapped.rate_max)
    v_th = float(snn.mapped.populations[1].params["v_th"])
    rows = level.evaluate(structure, [{"tau_ref": 1e-3}, {"tau_ref": too_long}, {"v_reset": v_th + 0.01}],
                          names=("gl", "tau_ref", "v_reset"))
    assert rows[0]["accuracy"] == 1.0 and rows[0]["sweepable"] == "gl,tau_ref,v_reset"
    assert "rate_max x tau_ref" in rows[1]["error"] and "v_reset" in rows[2]["error"]
    assert seen == [(1, ("gl", "tau_ref", "v_reset"))]  # the shape's names, not the task's


def test_every_task_of_a_network_shape_is_built_over_the_shapes_names():
    spec = sweep.Spec(level="network", points=[{"Cm": 100 * pF}, {"gl": 1 * nS}, {"tau_ref": 1 * ms}],
                      points_per_task=1)
    assert [t.names for t in spec.tasks()] == [("Cm", "gl", "tau_ref")] * 3


@pytest.mark.slow  # starts a LocalCluster
def test_the_sweeps_local_cluster_runs_its_workers_without_the_periodic_profiler():
    """The LocalCluster a sweep starts gives its workers `runner.QUIET_CLUSTER` (no statistical
    profiler sampling every 10 ms, slower health checks), so that the simulations running beside
    them keep their cores; the settings do not leak into the calling process."""
    import distributed  # noqa: F401  (registers its configuration)
    from bioconv.sweep.runner import QUIET_CLUSTER, _client

    def settings():
        import dask
        return {k: dask.config.get(k) for k in QUIET_CLUSTER}
    before = settings()
    with _client(None, 1, 30) as client:
        (seen,) = client.run(settings).values()
    assert seen == QUIET_CLUSTER
    assert seen["distributed.worker.profile.enabled"] is False
    assert settings() == before
