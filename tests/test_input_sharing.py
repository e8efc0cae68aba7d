"""Copies that show the same samples share one copy of the input layer (`network.build`'s
``input_copies``; `sweepable.evaluate_points` packs parameter points that way): every value is the
one each copy gets with an input layer of its own, and where copies cannot share (random or
point-dependent input, shared-kernel input pathways) the build says why."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from brian2 import Hz, ms, nS, pF

import networks
from bioconv import graph as G
from bioconv.converter import convert
from bioconv.errors import ParameterError
from bioconv.simulate import sweepable as sw
from bioconv.simulate.runner import CompiledNetwork

T = 30 * ms
DT = 0.1 * ms
NAMES = ("Cm", "gl", "tau_ref")
POINTS = [{"Cm": 80 * pF, "tau_ref": 0 * ms}, {"Cm": 130 * pF, "gl": 2 * nS, "tau_ref": 1 * ms},
          {"tau_ref": 3 * ms, "gl": 0 * nS}]


@pytest.fixture(scope="module")
def mlp():
    rng = np.random.default_rng(0)
    g = G.sequential((20,), [("linear", {"weight": rng.normal(0, .4, (12, 20)), "bias": rng.normal(0, .1, 12)}),
                             "relu", ("linear", {"weight": rng.normal(0, .4, (4, 12)), "bias": np.zeros(4)})])
    x = rng.random((6, 20))
    snn = convert(g, x, bias="current")
    y = snn.graph.forward(x)[snn.graph.output].reshape(len(x), -1).argmax(1)
    return snn, x, y


def _same_rows(got, want):
    skip = {"batch", "input_copies", "cache_hit", "presentations"}  # the layout, not the values
    for a, b in zip(got, want, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            if key in skip or key.startswith("call_"):
                continue
            assert a[key] == b[key] or (isinstance(b[key], float) and np.isnan(b[key]) and np.isnan(a[key])), key


@pytest.mark.slow  # compiles two projects
def test_points_sharing_the_input_layer_give_the_values_of_their_own(mlp, tmp_path, monkeypatch):
    """3 points x 3 chunks of samples: with one input copy per chunk (the runs' copies read them
    point after point), and with padding copies, every row equals the one without sharing."""
    monkeypatch.setenv("BIOCONV_PROJECT_CACHE_DIR", str(tmp_path))
    snn, x, y = mlp
    kw = dict(duration=T, dt=DT, device="cpp", presentations=2, threads=1, sweepable=NAMES)
    own = sw.evaluate_points(snn, x, y, POINTS, share_inputs=False, **kw)
    assert own[0]["input_copies"] == own[0]["batch"]
    shared = sw.evaluate_points(snn, x, y, POINTS, points_per_run=4, **kw)
    assert shared[0]["input_copies"] == 3 and shared[0]["batch"] == 12  # 4 points x 3 chunks, 1 of them padding
    _same_rows(shared, own)
    assert len({r["synaptic_events"] for r in own}) == 3  # the points differ
    # one chunk of all 6 samples: every point's copy reads one input copy (the sweep benchmark's layout)
    one = sw.evaluate_points(snn, x, y, POINTS, **dict(kw, presentations=6))
    assert one[0]["input_copies"] == 1 and one[0]["batch"] == 4  # 3 points, a power of two of copies
    _same_rows(one, own)


@pytest.mark.slow  # builds and runs networks
def test_compiled_network_counts_equal_with_shared_input_copies(mlp):
    """CompiledNetwork with 4 copies reading 2 input copies (runtime device): every population's counts
    per sample, the input's included, equal those of 4 copies with their own input; a run whose copies
    b and b % C are given different samples is refused, naming the copy."""
    snn, x, _ = mlp
    rates = snn.target_rates(x[:2])[snn.mapped.populations[0].name]
    per_copy = np.concatenate([rates, rates])  # copy b shows sample b % 2
    params = {"Cm": np.array([80., 80., 130., 130.]) * pF, "tau_ref": np.array([0., 0., 2., 2.]) * ms}
    counts = []
    for c in (None, 2):
        with CompiledNetwork(snn.mapped, 4, duration=T, dt=DT, device="runtime", sweepable=("Cm", "tau_ref"),
                             input_copies=c) as net:
            counts.append(net.run(per_copy, params=params).counts)
            if c is not None:
                with pytest.raises(ValueError, match="copy 2 is given other samples than copy 0"):
                    net.run(np.concatenate([rates, rates[::-1]]))
    assert counts[0].keys() == counts[1].keys()
    for name in counts[0]:
        np.testing.assert_array_equal(counts[1][name], counts[0][name], err_msg=name)
    assert not np.array_equal(counts[0]["1"][0], counts[0]["1"][2])  # the two points differ


@pytest.mark.parametrize("kwargs, message", [
    (dict(encoder="poisson"), "encoder 'poisson' draws random numbers per copy"),
    (dict(encoder="current"), "encoder 'current' drives the first layers with currents"),
    (dict(sweepable=("rate_max",)), "rate_max is swept"),
    (dict(input_copies=3), "input_copies must divide the 4 copies"),
])
def test_copies_that_cannot_share_their_input_are_refused(mlp, kwargs, message):
    snn, _, _ = mlp
    kwargs = {"input_copies": 2, **kwargs}
    with pytest.raises(ParameterError, match=message):
        CompiledNetwork(snn.mapped, 4, duration=T, dt=DT, device="runtime", **kwargs)


def test_shared_kernel_input_pathways_are_refused_by_name():
    from bioconv.simulate.network import input_sharing_obstacle
    model = networks.graph("small_convnet")
    snn = convert(model, np.random.default_rng(3).random((4, 1, 8, 8)), bias="neuron")
    assert "is a shared-kernel pathway" in input_sharing_obstacle(snn.mapped, "regular", "shared")
    assert input_sharing_obstacle(snn.mapped, "regular", "unrolled") is None


@pytest.mark.slow  # compiles a project
def test_evaluate_points_logs_why_copies_keep_their_own_input(mlp, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("BIOCONV_PROJECT_CACHE_DIR", str(tmp_path))
    snn, x, y = mlp
    with caplog.at_level(logging.INFO, logger="bioconv.simulate.sweepable"):
        rows = sw.evaluate_points(snn, x, y, [{"rate_max": 150 * Hz}, {"rate_max": 180 * Hz}], duration=T, dt=DT,
                                  device="cpp", presentations=6, threads=1)
    assert rows[0]["input_copies"] == rows[0]["batch"]
    assert "every copy has its own input layer (rate_max is swept" in caplog.text


def test_source_major_order_is_the_stable_sort_by_source():
    """The input pathway's synapse order, built from the runs of each source, is the stable argsort
    of the B tiled copies by their (shared) source: random pathways, copies and input copies."""
    from bioconv.simulate.network import _source_major
    rng = np.random.default_rng(1)
    for _ in range(300):
        n_src, n = int(rng.integers(1, 6)), int(rng.integers(1, 30))
        sources = np.sort(rng.integers(0, n_src, n))
        C, P = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        B = C * P
        i = (sources[None, :] + n_src * (np.arange(B) % C)[:, None]).ravel()
        np.testing.assert_array_equal(_source_major(sources, B, C), np.argsort(i, kind="stable"))
