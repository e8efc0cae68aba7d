"""Study: rate vs phase vs TTFS vs CSS on the MNIST subset's held-out digits (issue 13 item 5).

One table in the style of seed 002 Table 2 and seed 004 Table II: per network and code, the ANN the
code converts (each code's own: TTFS needs constrained networks, CSS has no max pooling) and its
accuracy, the SNN's accuracy and agreement, coding steps and latency (steps and ms), the time to the
first correct decision, spikes per neuron, SynOPs and the energy proxy, all from the metrics of
`bioconv.coding.metrics` as `SNN.evaluate` returns them. Then the CSS ablations: ternary vs binary
(no negative spikes, threshold beta^Ts) at each silent period Ts (Ts = 0 is "without the silent
period"), and accuracy vs coding steps T.

Phase coding is a config entry: the rate-converted network fed through the encoder ``phase``. When
that encoder is not registered (`bioconv.coding.encoders`), the row says so in ``status`` and holds
no numbers. Every table is written after each row, so an interrupted study keeps what it finished.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from brian2 import ms

from .. import data, zoo
from ..coding import encoders
from ..converter import convert

CODES = ("rate", "phase", "ttfs", "css")
#: The zoo network each code converts, per network.
ZOO = {
    "rate": {"mlp": "mnist_mlp", "convnet": "mnist_convnet"},
    "phase": {"mlp": "mnist_mlp", "convnet": "mnist_convnet"},
    "ttfs": {"mlp": "mnist_mlp_ttfs", "convnet": "mnist_convnet_ttfs"},
    "css": {"mlp": "mnist_mlp", "convnet": "mnist_convnet_avgpool"},
}
#: CSS ablation variants: (ternary TSA neurons, input encoder). Binary neurons take the greedy encoder.
CSS_VARIANTS = ((True, "css"), (False, "css_greedy"))
PHASE = "phase"


def phase_available() -> bool:
    """Whether the phase encoder (issue 13 item 4) is registered in `bioconv.coding.encoders`."""
    return PHASE in encoders


def unavailable(code: str, network: str, reason: str, n_test: int) -> dict:
    """A table row that says plainly why a code was not run, with no numbers."""
    return dict(network=network, code=code, ann_model=ZOO[code][network], n_test=n_test,
                status=f"not available: {reason}")


def table_row(code: str, network: str, res, y, *, coding_steps: int, latency_steps: int, latency_ms: float,
              wall_s: float, settings: str = "") -> dict:
    """One row of the comparison from an `EvaluationResult` ``res`` of labels ``y``.

    ``time to first correct decision``: over the digits the SNN classifies correctly, the decision
    time (`bioconv.coding.metrics.decision_time`: the first read time from which on the decision is
    the final one), median and mean, in steps of ``res.dt`` and in ms. SynOPs and the energy proxy
    are per digit (seed 004 eq. 22)."""
    y = np.asarray(y)
    n = len(y)
    final = res.predictions[:, -1]
    correct = final == y
    dtime = np.asarray(res.decision_time, dtype=float)[correct]
    dtime = dtime[np.isfinite(dtime)]
    med = float(np.median(dtime)) if dtime.size else float("nan")
    mean = float(np.mean(dtime)) if dtime.size else float("nan")
    return dict(
        network=network, code=code, ann_model=ZOO[code][network], n_test=n, settings=settings,
        ann_accuracy=res.ann_accuracy, snn_accuracy=res.accuracy,
        loss_points=round(100 * (res.ann_accuracy - res.accuracy), 2), agreement=res.agreement,
        undecided=res.undecided_fraction, coding_steps=int(coding_steps), latency_steps=int(latency_steps),
        latency_ms=float(latency_ms), first_correct_median_steps=med / res.dt, first_correct_median_ms=med * 1e3,
        first_correct_mean_ms=mean * 1e3, spikes_per_neuron=res.spikes_per_neuron["all"],
        synops_per_digit=res.synaptic_events / n, energy_proxy=res.energy_proxy, wall_s=round(wall_s, 1),
        status="ok")


def _split_xy(split, n):
    return split.x_test[:n].astype(np.float64), split.y_test[:n]


def run_code(entry: dict, network: str, split, cfg: dict, progress: bool = False) -> dict:
    """Convert ``network`` for ``entry["code"]`` and evaluate it on the first ``n_test`` held-out
    digits: a `table_row`, or an `unavailable` row for a phase entry without the phase encoder."""
    code = entry["code"]
    if code not in CODES:
        raise ValueError(f"coding_schemes: code {code!r} is none of {CODES}")
    n = int(entry.get("n_test", cfg["n_test"]))
    if code == PHASE and not phase_available():
        return unavailable(code, network, f"encoder {PHASE!r} is not registered (bioconv.coding.encoders: "
                                          f"{', '.join(encoders)})", n)
    x, y = _split_xy(split, n)
    x_cal = split.x_train[:int(cfg["n_calibration"])].astype(np.float64)
    model = getattr(zoo, ZOO[code][network])()
    t0 = time.perf_counter()
    if code in ("rate", "phase"):
        snn = convert(model, x_cal)
        duration, dt = float(entry["duration_ms"]) * ms, float(entry["dt_ms"]) * ms
        res = snn.evaluate(x, y, duration=duration, dt=dt, encoder=entry.get("encoder", "regular"),
                           device=entry.get("device", "cpp"), time_points=int(entry.get("time_points", 50)),
                           progress=progress)
        steps = int(round(float(duration / dt)))
        return table_row(code, network, res, y, coding_steps=steps, latency_steps=steps,
                         latency_ms=float(duration) * 1e3, wall_s=time.perf_counter() - t0,
                         settings=f"encoder {res.settings['encoder']}, T = {float(duration) * 1e3:g} ms, "
                                  f"dt = {float(dt) * 1e3:g} ms, rate_max {res.settings['rate_max_hz']:g} Hz")
    if code == "ttfs":
        snn = convert(model, coding="ttfs", input_shape=x.shape[1:])
        steps = int(entry["steps"])
        batch = entry.get("convnet_batch", entry.get("batch", 50)) if network == "convnet" else entry.get("batch", 50)
        res = snn.evaluate(x, y, steps=steps, device="runtime", batch=int(batch), progress=progress)
        s = res.settings
        return table_row(code, network, res, y, coding_steps=steps, latency_steps=s["n_windows"] * steps,
                         latency_ms=s["readout_time_s"] * 1e3, wall_s=time.perf_counter() - t0,
                         settings=f"{steps} steps per window, {s['n_windows']} windows, T_w = 1 ms")
    T, Ts, beta = int(entry["steps"]), int(entry.get("Ts", 1)), float(entry.get("beta", 1.5))
    snn = convert(model, x_cal, coding="css", beta=beta, Ts=Ts, steps=T)
    res = snn.evaluate(x, y, steps=T, device=entry.get("device", "cpp"), batch=entry.get("batch"), progress=progress)
    s = res.settings
    return table_row(code, network, res, y, coding_steps=T, latency_steps=s["latency_steps"],
                     latency_ms=s["latency_s"] * 1e3, wall_s=time.perf_counter() - t0,
                     settings=f"beta = {beta:g}, Ts = {Ts}, step = 1 ms, latency T + (L - 1) Ts")


def css_row(network, snn, x, y, *, steps, encoder, batch=None, device="cpp") -> dict:
    """One CSS ablation (or acceptance) row: ``snn`` (converted with coding="css") simulated on ``x``
    at T = ``steps`` through ``encoder``: ANN and SNN accuracy, agreement, latency, per hidden layer
    the 99.9th percentile of |decoded - ReLU(W decoded_in + b)| over the unsaturated neurons (units
    of theta_l, `bioconv.css.layer_errors`) and the saturated fraction, spikes per neuron and SynOPs
    of each sign, the energy proxy, simulation seconds and the 1-minute load average before and
    after (a shared machine). Shared with bench/css_acceptance.py."""
    from .. import css
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    out = snn.coding.simulate(snn, x, steps=steps, encoder=encoder, batch=batch, device=device)
    sim_s = time.perf_counter() - t0
    res = snn.coding.result(snn, x, y, out)
    v = snn.coding.values
    r = dict(network=network, steps=steps, Ts=v["Ts"], ternary=v["ternary"], encoder=encoder, adjust=v["adjust"],
             n_test=len(x), n_cal=snn.conversion["n_calibration"], ann=res.ann_accuracy, snn=res.accuracy,
             loss_points=round(100 * (res.ann_accuracy - res.accuracy), 2), agreement=res.agreement,
             latency_steps=res.settings["latency_steps"])
    errors = css.layer_errors(snn.mapped, out)
    r["worst_layer_p99_9_error"] = max(e.percentile(99.9) for e in errors.values())
    for k, (name, e) in enumerate(errors.items(), start=1):
        r[f"h{k}_p99_9_error"] = round(e.percentile(99.9), 4)
        r[f"h{k}_saturated"] = float(np.mean(~e.unsaturated))
    spikes = res.settings["spikes_by_sign"]
    r["spikes_pos_per_neuron"] = round(float(np.mean([s["positive"] for s in spikes.values()])), 3)
    r["spikes_neg_per_neuron"] = round(float(np.mean([s["negative"] for s in spikes.values()])), 3)
    r["synops_pos_per_digit"] = round(res.settings["synops_positive"] / len(x))
    r["synops_neg_per_digit"] = round(res.settings["synops_negative"] / len(x))
    r["energy_proxy"] = round(res.energy_proxy)
    r["device"], r["sim_s"] = device, round(sim_s, 1)
    r["load_start"], r["load_end"] = round(load, 1), round(os.getloadavg()[0], 1)
    return r


def ablation_plan(cfg: dict) -> list[tuple]:
    """``(part, network, T, Ts, ternary, encoder)`` of every CSS ablation row the config asks for:
    part "sign" (ternary vs binary at each Ts in ``Ts``, at each T in ``steps``; Ts = 0 is the
    network without the silent period) and part "T" (ternary, Ts = 1, each T in ``vs_steps``)."""
    plan = []
    for network in cfg.get("networks", []):
        for Ts in cfg.get("Ts", []):
            for ternary, encoder in CSS_VARIANTS:
                for T in cfg.get("steps", []):
                    plan.append(("sign", network, int(T), int(Ts), ternary, encoder))
        for T in cfg.get("vs_steps", []):
            if ("sign", network, int(T), 1, True, "css") not in plan:  # measured once, read by both parts
                plan.append(("T", network, int(T), 1, True, "css"))
    return plan


def _write(tables: dict, out: Path):
    for name, rows in tables.items():
        if rows:
            pd.DataFrame(rows).to_csv(out / f"{name}.csv", index=False)


def run(cfg: dict, out: Path, progress=None) -> dict[str, pd.DataFrame]:
    from ..optional import require_torch
    require_torch("bioconv.study.coding_schemes").set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    split = data.mnist_subset()
    show = progress is not None
    tables = {"comparison": [], "css_ablations": []}
    abl = cfg.get("ablations", {})
    codes = [[("code", network, entry) for entry in cfg["codes"] if network in entry.get("networks", cfg["networks"])]
             for network in cfg["networks"]]
    # the first network's rows, then the (cheaper) ablations, then the other networks' rows
    parts = codes[0] + [("ablation", p, None) for p in ablation_plan(abl)] + sum(codes[1:], [])
    bar = progress(parts, desc="coding_schemes study", unit="row") if progress else parts
    snns = {}
    for kind, what, entry in bar:
        if kind == "code":
            tables["comparison"].append(run_code(entry, what, split, cfg, progress=False))
        else:
            part, network, T, Ts, ternary, encoder = what
            n = int(abl["n_test"])
            x, y = _split_xy(split, n)
            key = (network, Ts, ternary)
            if key not in snns:  # T enters the conversion only through A.18 (not used): one per (Ts, sign)
                x_cal = split.x_train[:int(cfg["n_calibration"])].astype(np.float64)
                snns = {key: convert(getattr(zoo, ZOO["css"][network])(), x_cal, coding="css",
                                     beta=float(abl.get("beta", 1.5)), Ts=Ts, ternary=ternary)}
            row = css_row(network, snns[key], x, y, steps=T, encoder=encoder, device=abl.get("device", "cpp"))
            tables["css_ablations"].append(dict(part=part, **row))
        _write(tables, out)
    return {name: pd.DataFrame(rows) for name, rows in tables.items()}
