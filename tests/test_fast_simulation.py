"""Compile once, run many (`bioconv.simulate.runner`): the same spikes on every device and batch size,
Poisson statistics that agree across devices, clean build folders, and a CUDA build without a GPU.

The networks are numpy LayerGraphs (tests/networks.py: those torch made of seeded modules), so these
tests run without torch, on both Brian2 pins."""
from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pytest
from brian2 import get_device, ms, second

import networks
from bioconv.converter import convert
from bioconv.errors import ParameterError
from bioconv.simulate.devices import curand_dirs, simulation_device
from bioconv.simulate.runner import CompiledNetwork, batch_for_budget, network_size

T = 60 * ms
DT = 0.1 * ms


@pytest.fixture(scope="module")
def small_convnet():
    # conv (padding) -> ReLU -> max-pool gate -> avg-pool -> linear with bias: every population kind.
    model = networks.graph("small_convnet")
    x = np.random.default_rng(3).random((40, 1, 8, 8))
    return model, x


def _counts(snn, x, device, batch, encoder="regular", seed=0, float32=False, threads=1, presentations=1):
    rates = snn.target_rates(x)[snn.mapped.populations[0].name]
    out = {}
    with CompiledNetwork(snn.mapped, batch, duration=T, dt=DT, encoder=encoder, device=device, seed=seed,
                         threads=threads, float32=float32, presentations=presentations) as net:
        for k in range(0, len(x), net.capacity):
            res = net.run(rates[k:k + net.capacity])
            for name, c in res.counts.items():
                out.setdefault(name, []).append(c)
        assert net.runs == -(-len(x) // net.capacity)  # one build, several runs
    return {name: np.concatenate(c) for name, c in out.items()}


@pytest.mark.slow
@pytest.mark.parametrize("encoder", ["regular", "current", "phase"])
def test_counts_identical_across_devices_and_batch_sizes(small_convnet, encoder):
    model, x = small_convnet
    x = x[:5]
    snn = convert(model, small_convnet[1], bias="current")
    ref = _counts(snn, x, "runtime", 1, encoder)            # the naive way: one sample per run
    configs = [("runtime", 5, 1), ("cpp", 3, 1), ("cpp", 5, 1)]  # 3: a padded last batch
    if encoder != "current":  # samples one after another in a run: 2 copies x 2 presentations, padded
        configs.append(("cpp", 2, 2))
    for device, batch, presentations in configs:
        got = _counts(snn, x, device, batch, encoder, presentations=presentations)
        assert ref.keys() == got.keys()
        for name in ref:
            np.testing.assert_array_equal(got[name], ref[name], err_msg=f"{device} batch {batch} x {presentations}: "
                                                                        f"population {name}")
    total = sum(int(c.sum()) for c in ref.values())
    assert total > 500 and ref[snn.mapped.populations[-1].name].sum() > 20  # the network is active


@pytest.mark.slow
def test_openmp_threads_give_the_same_counts(small_convnet):
    """Two OpenMP threads: neuron updates split across threads, synaptic jumps onto the targets (and
    the max-pool gate's counters) stay serial in Brian2, so counts are those of one thread."""
    model, x = small_convnet
    snn = convert(model, x, bias="current")
    one = _counts(snn, x[:4], "cpp", 4, threads=1)
    two = _counts(snn, x[:4], "cpp", 4, threads=2)
    for name in one:
        np.testing.assert_array_equal(two[name], one[name], err_msg=name)


@pytest.mark.slow
def test_poisson_counts_agree_statistically_across_devices(small_convnet):
    model, x = small_convnet
    snn = convert(model, x, bias="current")
    xs = np.repeat(x[:1], 40, axis=0)  # 40 independent presentations of one digit
    runtime = _counts(snn, xs, "runtime", 40, "poisson", seed=1)
    cpp = _counts(snn, xs, "cpp", 20, "poisson", seed=1)
    cpp_again = _counts(snn, xs, "cpp", 20, "poisson", seed=1)
    cpp_other = _counts(snn, xs, "cpp", 20, "poisson", seed=2)
    for name in runtime:
        np.testing.assert_array_equal(cpp_again[name], cpp[name], err_msg=f"same seed, population {name}")
        a, b = runtime[name].astype(float), cpp[name].astype(float)
        # Per-unit mean counts over 40 presentations: a two-sample z score on the difference of means.
        se = np.sqrt(a.var(0, ddof=1) / len(a) + b.var(0, ddof=1) / len(b))
        active = se > 0
        z = np.abs(a.mean(0) - b.mean(0))[active] / se[active]
        assert active.sum() > 0 and np.all(z < 5), (name, z.max())
        # and over the whole layer, a tighter test on the total count
        ta, tb = a.sum(1), b.sum(1)
        zt = abs(ta.mean() - tb.mean()) / np.sqrt(ta.var(ddof=1) / len(ta) + tb.var(ddof=1) / len(tb))
        assert zt < 4, (name, zt)
    first = snn.mapped.populations[1].name
    assert not np.array_equal(cpp_other[first], cpp[first])  # another seed, other spikes


@pytest.mark.slow
def test_compile_once_leaves_nothing_behind(small_convnet, tmp_path, monkeypatch):
    model, x = small_convnet
    snn = convert(model, x)
    monkeypatch.setenv("BIOCONV_BUILD_DIR", str(tmp_path))
    rates = snn.target_rates(x[:6])[snn.mapped.populations[0].name]
    with CompiledNetwork(snn.mapped, 2, duration=10 * ms, dt=DT, device="cpp", threads=1) as net:
        folder = net.folder
        project = sorted(p.relative_to(net.project) for p in net.project.rglob("*"))
        for k in range(0, 6, 2):
            net.run(rates[k:k + 2])
        assert sorted(p.relative_to(net.project) for p in net.project.rglob("*")) == project  # no run writes into it
        assert not any(name.startswith("run-") for name in os.listdir(folder))  # each run's folder removed
        with pytest.raises(ValueError, match="built for 1..2"):
            net.run(rates)
    assert not folder.exists()
    assert get_device().__class__.__name__ == "RuntimeDevice"  # Brian2's device is back as it was
    assert os.listdir(tmp_path) == []


def test_batch_for_budget_follows_the_memory_estimate(small_convnet):
    model, x = small_convnet
    snn = convert(model, x)
    neurons, syn = network_size(snn.mapped)
    assert neurons == sum(p.size for p in snn.mapped.populations) and syn > 0
    small, large = batch_for_budget(snn.mapped, 1000, 10 ** 5), batch_for_budget(snn.mapped, 1000, 10 ** 7)
    assert 1 <= small < large <= 1000
    assert batch_for_budget(snn.mapped, 7, 10 ** 12) == 7
    assert batch_for_budget(snn.mapped, 7, 1) == 1


def test_unknown_device_is_refused(small_convnet):
    model, x = small_convnet
    snn = convert(model, x)
    with pytest.raises(ParameterError, match="unknown device 'gpu'"):
        snn.evaluate(x[:2], np.array([0, 1]), duration=T, device="gpu")


@pytest.mark.slow
def test_float32_runs_in_single_precision_and_stays_close(small_convnet):
    model, x = small_convnet
    snn = convert(model, x)
    x = x[:4]
    f64 = _counts(snn, x, "cpp", 4)
    f32 = _counts(snn, x, "cpp", 4, float32=True)
    with simulation_device("runtime", float32=True):
        from brian2 import NeuronGroup
        assert NeuronGroup(1, "v : 1").v[:].dtype == np.float32
    for name in f64:
        # Rounding can move a threshold crossing by a step, not change a rate.
        assert np.abs(f32[name].astype(int) - f64[name]).max() <= 2, name


@pytest.mark.slow
@pytest.mark.timeout(1800)  # nvcc alone takes 1.5-4 min on 2 idle cores, past 10 min on busy ones
def test_cuda_project_builds_without_a_gpu(tmp_path):
    """brian2cuda generates and compiles (nvcc) a converted network; nothing runs (no GPU needed)."""
    pytest.importorskip("brian2cuda", reason="brian2cuda is not installed")
    nvcc = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None)
    if nvcc is None:
        pytest.skip("CUDA build test: nvcc is missing (no CUDA toolkit on PATH or in /usr/local/cuda)")
    if curand_dirs() is None and not os.path.exists("/usr/local/cuda/include/curand.h"):
        pytest.skip("CUDA build test: curand headers are missing (pip install 'nvidia-curand>=10.4,<10.5')")
    model = networks.graph("single_linear")  # Linear(6, 3): few code objects, nvcc takes ~10 s per object here
    snn = convert(model, np.random.default_rng(0).random((50, 6)))
    with CompiledNetwork(snn.mapped, 4, duration=20 * ms, dt=DT, device="cuda", directory=tmp_path / "cuda") as net:
        assert net.kind == "cuda"
    binary = tmp_path / "cuda" / "main"
    assert binary.exists() and os.access(binary, os.X_OK)
    assert (tmp_path / "cuda" / "objects.cu").exists()
    assert get_device().__class__.__name__ == "RuntimeDevice"


def test_delta_jump_without_refractoriness_matches_the_full_form():
    """tau_ref = 0: the cheaper `on_pre_without_refractoriness` gives the very same trajectory; with
    tau_ref > 0 it is not used (the full form drops charge arriving while refractory)."""
    from brian2 import Network, SpikeGeneratorGroup, StateMonitor, mV, pF, pcoulomb as pC
    from bioconv import models

    def trace(target_refractory, tau_ref):
        with simulation_device("runtime", dt=DT):
            src = SpikeGeneratorGroup(1, np.zeros(40, int), np.arange(40) * 0.5 * ms)
            g = models.neuron_group(1, "conductance_lif", "delta", Cm=100 * pF, v_th=-60 * mV, tau_ref=tau_ref)
            s = models.synapses(src, g, "delta", i=[0], j=[0], w=0.3 * pC, target_refractory=target_refractory)
            mon = StateMonitor(g, "v", record=0)
            Network(src, g, s, mon).run(25 * ms, namespace={})
            return np.asarray(mon.v[0]), str(s.pre.code)

    full, code_full = trace(True, 0 * ms)
    fast, code_fast = trace(False, 0 * ms)
    assert "timestep" in code_full and "timestep" not in code_fast
    np.testing.assert_array_equal(fast, full)
    assert full.max() > -62e-3  # spikes happened (threshold -60 mV, reset to -70 mV)


def test_presentations_stay_on_the_network_clock(small_convnet):
    """Resets between presentations run on a clock of dt = T; cpp_standalone runs two clocks together
    only within 1e-14 s, which k*T and k*steps*dt leave (float rounding) from k = 384 at T = 200 ms."""
    from bioconv.simulate.runner import aligned_presentations
    assert aligned_presentations(200 * ms, 0.1 * ms, 1000) == 384
    assert aligned_presentations(500 * ms, 0.1 * ms, 1000) == 1000
    model, x = small_convnet
    snn = convert(model, x)
    with pytest.raises(ValueError, match="drift"):
        CompiledNetwork(snn.mapped, 2, duration=200 * ms, dt=0.1 * ms, presentations=400)
    assert get_device().__class__.__name__ == "RuntimeDevice"


def test_one_compiled_network_at_a_time(small_convnet):
    model, x = small_convnet
    snn = convert(model, x)
    with CompiledNetwork(snn.mapped, 1, duration=5 * ms, dt=DT, device="runtime"):
        with pytest.raises(RuntimeError, match="another CompiledNetwork is open"):
            CompiledNetwork(snn.mapped, 1, duration=5 * ms, dt=DT, device="runtime")
    with CompiledNetwork(snn.mapped, 1, duration=5 * ms, dt=DT, device="runtime") as net:  # released
        assert net.run(snn.target_rates(x[:1])[snn.mapped.populations[0].name]).counts


@pytest.mark.slow
def test_parallel_runs_give_the_same_counts_and_clean_up(small_convnet, tmp_path, monkeypatch):
    """cpp runs of one binary as parallel processes (`run_many(workers=2)`), each in its own results
    folder: the counts of running the batches one by one, and nothing left behind."""
    model, x = small_convnet
    snn = convert(model, x)
    monkeypatch.setenv("BIOCONV_BUILD_DIR", str(tmp_path))
    rates = snn.target_rates(x[:14])[snn.mapped.populations[0].name]
    with CompiledNetwork(snn.mapped, 2, duration=T, dt=DT, device="cpp", threads=1, presentations=2) as net:
        batches = [rates[k:k + net.capacity] for k in range(0, len(rates), net.capacity)]  # 4 runs, last one padded
        project = sorted(p.relative_to(net.project) for p in net.project.rglob("*"))
        one_by_one = [net.run(b) for b in batches]
        parallel = list(net.run_many(batches, workers=2))
        assert net.runs == 8 and net.sim_seconds > 0
        assert sorted(p.relative_to(net.project) for p in net.project.rglob("*")) == project  # no run writes into it
        assert not any(name.startswith("run-") for name in os.listdir(net.folder))  # each run's folder removed
    assert len(parallel) == len(one_by_one) == 4
    for a, b in zip(one_by_one, parallel):
        for name in a.counts:
            np.testing.assert_array_equal(b.counts[name], a.counts[name], err_msg=name)
        np.testing.assert_array_equal(b.out_t, a.out_t)
    assert sum(int(c.sum()) for c in one_by_one[0].counts.values()) > 100
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_evaluate_spreads_runs_over_the_cores(small_convnet):
    """Two cores: two runs at once, one OpenMP thread each, and the decisions of the runtime device."""
    model, x = small_convnet
    snn = convert(model, x)
    y = np.zeros(12, dtype=int)
    fast = snn.evaluate(x[:12], y, duration=T, dt=DT, device="cpp", threads=2, progress=False)
    assert fast.settings["parallel_runs"] == 2 and fast.settings["openmp_threads"] == 1
    slow = snn.evaluate(x[:12], y, duration=T, dt=DT, device="runtime", batch=12, progress=False)
    np.testing.assert_array_equal(fast.predictions, slow.predictions)
    assert fast.synaptic_events == slow.synaptic_events > 0


def test_shared_parameters_and_zero_refractory_period_change_no_spike():
    """Parameters shared by the group (read once per step) and a zero refractory period built without
    Brian2's refractory mechanism give the spikes of per-neuron parameters with the mechanism."""
    from brian2 import Network, SpikeGeneratorGroup, SpikeMonitor, mV, pA, pF, pcoulomb as pC
    from bioconv import models

    def spikes(shared, tau_ref=0 * ms):
        with simulation_device("runtime", dt=DT):
            src = SpikeGeneratorGroup(1, np.zeros(30, int), np.arange(30) * 0.7 * ms)
            g = models.neuron_group(4, "conductance_lif", "delta", Cm=100 * pF, v_th=-60 * mV, tau_ref=tau_ref,
                                    I_bias=np.array([0, 50, 120, 300]) * pA, shared=shared)
            s = models.synapses(src, g, "delta", i=[0] * 4, j=[0, 1, 2, 3], w=0.4 * pC)
            mon = SpikeMonitor(g)
            Network(src, g, s, mon).run(30 * ms, namespace={})
            return (np.asarray(mon.i), np.asarray(mon.t), "lastspike" in g.variables, g.variables["Cm"].scalar,
                    str(s.pre.code))

    i0, t0, refr0, scalar0, _ = spikes(())
    i1, t1, refr1, scalar1, code1 = spikes(("Cm", "gl", "EL", "v_th", "v_reset", "tau_ref"))
    assert refr0 and not scalar0 and not refr1 and scalar1 and "timestep" not in code1
    np.testing.assert_array_equal(i1, i0)
    np.testing.assert_array_equal(t1, t0)
    assert len(i0) > 20 and len(set(i0.tolist())) >= 3
    # a refractory period > 0 keeps the mechanism, shared or not
    i2, t2, refr2, _, _ = spikes(("Cm", "tau_ref"), tau_ref=2 * ms)
    i3, t3, _, _, _ = spikes((), tau_ref=2 * ms)
    assert refr2 and len(i2) < len(i0)
    np.testing.assert_array_equal(i2, i3)
    np.testing.assert_array_equal(t2, t3)
    with pytest.raises(ParameterError, match="shared parameter 'I_bias' needs one value"):
        spikes(("I_bias",))


def test_static_states_are_folded_and_still_reset():
    """A perfect integrator without bias under delta synapses moves only by jumps: folded into a plain
    variable (no integration), it spikes as before, and the rest state still resets it."""
    from brian2 import Network, SpikeGeneratorGroup, SpikeMonitor, mV, pA, pF, pcoulomb as pC
    from bioconv import models
    shared = ("Cm", "v_th", "v_reset", "tau_ref", "I_bias")

    def spikes(fold, I_bias=0 * pA):
        with simulation_device("runtime", dt=DT):
            src = SpikeGeneratorGroup(1, np.zeros(30, int), np.arange(30) * 0.7 * ms)
            g = models.neuron_group(2, "perfect_integrator", "delta", Cm=100 * pF, v_th=10 * mV, I_bias=I_bias,
                                    shared=shared, fold_static_states=fold)
            s = models.synapses(src, g, "delta", i=[0, 0], j=[0, 1], w=np.array([0.3, 0.45]) * pC)
            mon = SpikeMonitor(g)
            Network(src, g, s, mon).run(25 * ms, namespace={})
            return np.asarray(mon.i), np.asarray(mon.t), g

    i0, t0, g0 = spikes(False)
    i1, t1, g1 = spikes(True)
    assert "v" in g0.equations.diff_eq_names and "v" not in g1.equations.diff_eq_names
    assert "v = v_reset" in models.rest_state_code(g1)
    np.testing.assert_array_equal(i1, i0)
    np.testing.assert_array_equal(t1, t0)
    assert len(i0) > 10
    _, _, g2 = spikes(True, I_bias=20 * pA)  # a bias moves the membrane: integrated as before
    assert "v" in g2.equations.diff_eq_names


@pytest.mark.slow
def test_presentations_of_a_bias_free_network_match_runtime():
    """The reference ConvNet's layers have no bias: folded perfect integrators, counted per
    presentation; counts equal those of one sample per runtime run."""
    model = networks.graph("bias_free_convnet")  # conv, ReLU, max pool, flatten, linear, ReLU, linear; no bias
    x = np.random.default_rng(5).random((20, 1, 8, 8))
    snn = convert(model, x)
    with CompiledNetwork(snn.mapped, 1, duration=T, dt=DT, device="runtime") as net:
        first = net.built.groups[snn.mapped.populations[1].name]
        assert "v" not in first.equations.diff_eq_names  # folded
    ref = _counts(snn, x[:5], "runtime", 1)
    got = _counts(snn, x[:5], "cpp", 2, presentations=2)
    for name in ref:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
    assert sum(int(c.sum()) for c in ref.values()) > 300
