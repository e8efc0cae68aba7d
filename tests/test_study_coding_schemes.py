"""The coding_schemes study (issue 13 item 5): its table builder, the phase row with and without the
phase encoder, the report, and the study end to end on a tiny config."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bioconv.coding import encoders
from bioconv.study import coding_schemes as cs
from bioconv.study import coding_schemes_report as report


def _result(pred, dtime, dt=1e-3):
    pred = np.asarray(pred)
    return SimpleNamespace(predictions=pred, decision_time=np.asarray(dtime, dtype=float), dt=dt, ann_accuracy=0.75,
                           accuracy=0.5, agreement=0.75, undecided_fraction=0.0, spikes_per_neuron={"all": 1.5},
                           synaptic_events=400, energy_proxy=123.0, settings={"encoder": "phase", "rate_max_hz": 200.0})


def test_table_row_first_correct_decision_over_the_correct_digits():
    # four digits, final decisions (last column) 1, 2, 0, -1; labels 1, 2, 3, 0: two correct
    pred = [[0, 1], [2, 2], [0, 0], [1, -1]]
    res = _result(pred, [2e-3, 1e-3, 1e-3, np.nan])
    r = cs.table_row("css", "mlp", res, [1, 2, 3, 0], coding_steps=10, latency_steps=12, latency_ms=12.0, wall_s=0.0)
    assert r["status"] == "ok" and r["ann_model"] == "mnist_mlp" and r["n_test"] == 4
    assert r["first_correct_median_ms"] == pytest.approx(1.5) and r["first_correct_median_steps"] == pytest.approx(1.5)
    assert r["synops_per_digit"] == 100 and r["energy_proxy"] == 123.0 and r["loss_points"] == 25.0
    assert (r["coding_steps"], r["latency_steps"], r["latency_ms"]) == (10, 12, 12.0)


def _tiny_split():
    rng = np.random.default_rng(0)
    return SimpleNamespace(x_train=rng.random((8, 1, 28, 28)), x_test=rng.random((4, 1, 28, 28)),
                           y_test=np.array([0, 1, 2, 3]))


CFG = dict(n_test=4, n_calibration=8)
PHASE = dict(code="phase", duration_ms=10.0, dt_ms=0.1, encoder="phase", time_points=2)


def test_phase_row_without_the_phase_encoder_says_so(monkeypatch):
    monkeypatch.setattr(cs, "phase_available", lambda: False)
    r = cs.run_code(PHASE, "mlp", _tiny_split(), CFG)
    assert r["status"].startswith("not available: encoder 'phase' is not registered")
    assert "snn_accuracy" not in r  # no numbers
    table = report.comparison_table(pd.DataFrame([r]))
    assert "not available" in table["settings"].iloc[0] and table["SNN acc. (%)"].iloc[0] == ""


def test_phase_row_with_the_phase_encoder_runs_the_rate_network_through_it(monkeypatch):
    calls = {}

    class FakeSNN:
        def evaluate(self, x, y, **kw):
            calls.update(kw)
            return _result([[0, 0], [1, 1], [2, 2], [0, 0]], [0.0, 5e-3, 5e-3, 0.0], dt=1e-4)

    monkeypatch.setattr(cs, "convert", lambda model, x_cal: FakeSNN())
    monkeypatch.setattr(cs, "zoo", SimpleNamespace(mnist_mlp=lambda: "the rate MLP"))
    registered = "phase" in encoders
    if not registered:  # stands in for the phase encoder of issue 13 item 4
        encoders.register("phase", object())
    try:
        assert cs.phase_available()
        r = cs.run_code(PHASE, "mlp", _tiny_split(), CFG)
    finally:
        if not registered:
            encoders.unregister("phase")
    assert calls["encoder"] == "phase" and r["status"] == "ok" and r["code"] == "phase"
    assert r["coding_steps"] == r["latency_steps"] == 100 and r["latency_ms"] == pytest.approx(10.0)
    assert r["first_correct_median_steps"] == pytest.approx(50.0)  # 0, 5, 5 ms: median 5 ms = 50 steps of 0.1 ms


def test_ablation_plan_measures_a_shared_row_once():
    plan = cs.ablation_plan(dict(networks=["mlp"], Ts=[0, 1], steps=[10], vs_steps=[4, 10]))
    assert plan.count(("sign", "mlp", 10, 1, True, "css")) == 1
    assert ("T", "mlp", 10, 1, True, "css") not in plan and ("T", "mlp", 4, 1, True, "css") in plan
    assert sum(p[0] == "sign" for p in plan) == 4  # Ts 0, 1 x ternary, binary


def test_ablation_checks_state_the_orderings():
    ab = pd.DataFrame([dict(part="sign", network="mlp", steps=6, Ts=Ts, ternary=t, snn=acc, agreement=acc, ann=0.9)
                       for Ts, t, acc in [(0, True, 0.9), (0, False, 0.8), (1, True, 0.9), (1, False, 0.85)]])
    lines = report.ablation_checks(ab)
    assert any("Ts = 0" in s and "ternary ahead" in s for s in lines)
    assert any("improves (or holds) as Ts grows" in s for s in lines)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_study_runs_end_to_end_on_a_tiny_config(tmp_path, monkeypatch):
    pytest.importorskip("torch", reason="torch is not installed: the study converts the zoo's torch networks "
                                        "(the Python 3.12 lane runs without torch)")
    from bioconv.study import run_study
    monkeypatch.setattr(cs, "phase_available", lambda: False)
    (tmp_path / "c.toml").write_text("""
[quick]
networks = ["mlp"]
n_test = 6
n_calibration = 50
[[quick.codes]]
code = "phase"
duration_ms = 10.0
dt_ms = 0.1
[[quick.codes]]
code = "css"
steps = 4
device = "runtime"
[quick.ablations]
networks = ["mlp"]
n_test = 6
device = "runtime"
Ts = [1]
steps = [4]
vs_steps = []
""")
    out = run_study("coding_schemes", out=tmp_path / "out", config=tmp_path / "c.toml")
    cmp = pd.read_csv(out / "comparison.csv")
    assert list(cmp.code) == ["phase", "css"] and cmp.status.iloc[1] == "ok"
    assert cmp.latency_steps.iloc[1] == 4 + 2 * 1  # T + (L - 1) Ts, L = 3 weight layers
    ab = pd.read_csv(out / "css_ablations.csv")
    assert sorted(ab.ternary) == [False, True]
    text = (out / "summary.md").read_text()
    assert "not available: encoder 'phase'" in text and "Orderings" in text
    assert (out / "accuracy_vs_latency.png").exists() and (out / "energy_vs_accuracy.png").exists()


@pytest.mark.slow
def test_rate_evaluations_carry_the_temporal_metrics():
    from bioconv import convert
    from bioconv.coding import scheme
    graph, x = scheme("rate").example()
    snn = convert(graph, x)
    y = graph.forward(x[:4])[graph.output].reshape(4, -1).argmax(1)
    res = snn.evaluate(x[:4], y, device="runtime", progress=False, time_points=4)
    assert res.decision_time.shape == (4,)
    assert set(res.spikes_per_neuron) == {p.name for p in snn.mapped.populations[1:]} | {"all"}
    neurons = sum(p.size for p in snn.mapped.populations[1:])
    steps = round(res.duration / res.dt)
    assert res.energy_proxy == pytest.approx(res.synaptic_events / 4 + neurons * steps)
