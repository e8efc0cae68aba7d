"""The seed003_fig13 study's theory curve: the added leak gl read as a negative bias on every unit
(`leak_theory`, `leak_as_bias`), on a small numpy network (no torch, no MNIST, no simulation)."""
import numpy as np
import pandas as pd
import pytest

from bioconv import graph
from bioconv.converter import convert
from bioconv.study import seed003_fig13 as fig13


def _network():
    """4 inputs -> 3 ReLU -> 2 outputs, no biases, converted with max normalization (known scales)."""
    rng = np.random.default_rng(3)
    w1, w2 = rng.uniform(0.1, 1.0, (3, 4)), rng.uniform(-0.5, 1.0, (2, 3))
    g = graph.sequential((4,), [("linear", {"weight": w1}), "relu", ("linear", {"weight": w2})])
    x = rng.uniform(0, 1, (40, 4))
    snn = convert(g, x, normalization="max", bias="current", reset="linear", synapse="delta")
    return snn, x, w1, w2


def _accuracy(out, y):
    """Unique positive winner, as the SNN's spike counts decide."""
    top = out.max(1)
    decided = (top > 0) & ((out == top[:, None]).sum(1) == 1)
    return float(np.mean(decided & (out.argmax(1) == y)))


def test_leak_as_bias_adds_the_normalized_bias_times_each_populations_scale():
    snn, x, w1, w2 = _network()
    y = (x @ w1.T).clip(0) @ w2.T
    y = y.argmax(1)
    assert fig13.leak_as_bias(snn, x, y, 0.0) == _accuracy(np.maximum(x @ w1.T, 0) @ w2.T, y)
    s = snn.scales.values
    hidden, output = [p.name for p in snn.populations if p.kind in ("relu", "output")]
    for b in (-0.05, -0.3, -1.0):
        h = np.maximum(x @ w1.T + b * s[hidden], 0)  # ANN units: a = scale x normalized activation
        want = _accuracy(h @ w2.T + b * s[output], y)
        assert fig13.leak_as_bias(snn, x, y, b) == pytest.approx(want)
    assert fig13.leak_as_bias(snn, x, y, -10.0) == 0.0  # everything silent: no decision


def test_leak_theory_rules_are_table7s_onset_bias_and_half_of_it_over_the_points_leaks():
    snn, x, w1, w2 = _network()
    y = (np.maximum(x @ w1.T, 0) @ w2.T).argmax(1)
    cm = float(snn.mapped.populations[1].params["Cm"])
    df = pd.DataFrame({"network": ["stub"] * 2, "n_test": 40, "n_calibration": 40, "normalization": "max",
                       "bias": "current", "reset": "linear", "synapse": "delta",
                       "gl": [0.0, 0.3e-9], "rate_max": [10.0, 10.0]})
    seen = {}

    def load(**kw):
        seen.update(kw)
        return snn, x, y
    t = fig13.leak_theory({}, df, load=load)
    assert seen["network"] == "stub" and seen["n_calibration"] == 40
    point_leak = 0.3e-9 / (cm * 10.0)
    for rule, fraction in fig13.LEAK_RULES:
        r = t[t.rule == rule]
        assert np.any(np.isclose(r.leak, point_leak, rtol=1e-12))
        # -gl v_th / (rate_max v_th Cm) = -leak (Table VII, small input), half of it far above the onset
        np.testing.assert_allclose(r.bias_normalized, -fraction * r.leak, rtol=1e-9, atol=1e-15)
        assert r[r.leak == 0].ann_accuracy_with_bias.iloc[0] == fig13.leak_as_bias(snn, x, y, 0.0)
        k = np.argmin(np.abs(r.leak - 0.5))
        assert r.ann_accuracy_with_bias.iloc[k] == fig13.leak_as_bias(snn, x, y, -fraction * r.leak.iloc[k])
    assert set(t.Cm_F) == {cm}


def test_leak_theory_refuses_a_sweep_that_moves_cm():
    snn, x, _, _ = _network()
    df = pd.DataFrame({"Cm": [1e-10, 2e-10]})
    with pytest.raises(ValueError, match="moves Cm"):
        fig13._uniform_cm(snn.mapped, df)
