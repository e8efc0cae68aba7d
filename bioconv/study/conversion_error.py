"""Study: how far converted SNNs depart from their ANNs, vs presentation time, time step, reset mode and
bias strategy, for the reference MLP and the seed 003 ConvNet on the held-out MNIST-subset digits.

Each run (network x setting) simulates the test digits once for the longest presentation time;
accuracy and agreement at shorter times come from the same spike record (accuracy vs time). Each
run's rows are appended to the CSV files as soon as it finishes.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
from brian2 import Hz, mV, ms, pF

from .. import data, zoo
from ..coding import RateCoding
from ..converter import convert, load_weights
from ..io import load
from ..io.factory import load_model

NETWORKS = {"mlp": zoo.mnist_mlp, "convnet": zoo.mnist_convnet}


def runs(cfg: dict) -> list[dict]:
    """Expand the config into one dict per simulation run."""
    out = []
    for block in cfg["runs"]:
        grid = {k: v for k, v in block.items() if isinstance(v, list)}
        fixed = {k: v for k, v in block.items() if not isinstance(v, list)}
        for values in itertools.product(*grid.values()):
            out.append({**fixed, **dict(zip(grid, values))})
    return out


RUN_KEYS = {"network", "weights", "T_ms", "dt_ms", "bias", "reset", "rate_max_hz", "synapse", "tau_s_ms", "encoder",
            "leak_rule", "n_test", "batch", "float32", "seeds", "readout", "normalization", "Cm_pF", "v_th_mV",
            "tau_ref_ms"}
#: What a saved network file already fixed: a run on one cannot set these.
CONVERSION_KEYS = {"bias", "reset", "rate_max_hz", "synapse", "tau_s_ms", "leak_rule", "readout", "normalization",
                   "Cm_pF", "v_th_mV", "tau_ref_ms", "weights"}


def _network_kind(name: str) -> str:
    """'zoo' (a name in NETWORKS), 'file' (a saved network, *.bioconv) or 'factory' (module:factory or
    file.py:factory, the user's torch network)."""
    if name in NETWORKS:
        return "zoo"
    if name.endswith(".bioconv"):
        return "file"
    if ":" in name:
        return "factory"
    raise ValueError(f"conversion_error config: network {name!r} is none of {sorted(NETWORKS)}, a saved network "
                     f"file (*.bioconv) or a factory (package.module:factory, path/to/file.py:factory)")


def _settings_of(conversion: dict) -> dict:
    """A saved network's conversion settings in the config's keys and units."""
    units = {"rate_max": ("rate_max_hz", Hz), "tau_s": ("tau_s_ms", ms), "Cm": ("Cm_pF", pF), "v_th": ("v_th_mV", mV),
             "tau_ref": ("tau_ref_ms", ms)}
    out = {}
    for key, value in conversion.items():
        if key in units:
            out[units[key][0]] = float(value / units[key][1])
        elif key in CONVERSION_KEYS:
            out[key] = value
    return out


def defaults() -> dict:
    """Every run setting's default, from the API's own defaults (rate coding's declared parameters),
    in the config's units: a run's tables show the value it ran with, never a blank."""
    p = {name: spec.default for name, spec in RateCoding.PARAMETERS.items()}
    return dict(bias=p["bias"], reset=p["reset"], rate_max_hz=float(p["rate_max"] / Hz), synapse=p["synapse"],
                tau_s_ms=float(p["tau_s"] / ms), encoder=RateCoding.default_encoder, leak_rule=p["leak_rule"],
                readout=p["readout"], normalization=p["normalization"], Cm_pF=float(p["Cm"] / pF),
                v_th_mV=float(p["v_th"] / mV), tau_ref_ms=float(p["tau_ref"] / ms), seeds=1, float32=False)


def _batch(value):
    return None if value in (None, "auto") else int(value)  # "auto": from the memory budget


def run(cfg: dict, out: Path, device: str = "cpp", progress=None) -> dict[str, pd.DataFrame]:
    out.mkdir(parents=True, exist_ok=True)
    split = data.mnist_subset()
    todo = runs(cfg)
    for r in todo:  # a misspelt key would silently fall back to a default: refuse it
        unknown = set(r) - RUN_KEYS
        if unknown or "network" not in r:
            raise ValueError(f"conversion_error config: run {r} has unknown keys {sorted(unknown)} or no network; "
                             f"keys: {sorted(RUN_KEYS)}")
        kind = _network_kind(str(r["network"]))
        fixed = sorted(set(r) & CONVERSION_KEYS)
        if kind == "file" and fixed:
            raise ValueError(f"conversion_error config: run {r} sets {fixed}, which the saved network "
                             f"{r['network']!r} already fixed")
        if kind == "file" and not Path(r["network"]).is_file():
            raise ValueError(f"conversion_error config: saved network {r['network']!r} does not exist")
        if "weights" in r and kind != "factory":
            raise ValueError(f"conversion_error config: run {r} gives weights, which only a factory network takes")
    bar = progress(todo, desc="conversion_error", unit="run") if progress else todo
    tables = {"runs": [], "vs_time": [], "layers": []}
    for k, r in enumerate(bar):
        kind = _network_kind(str(r["network"]))
        if kind == "file":  # converted already: its own settings, not the defaults, describe the run
            snn = load(r["network"])
            r = {**defaults(), **_settings_of(snn.conversion), **r}
        else:
            r = {**defaults(), **r}
            if kind == "zoo":
                net = NETWORKS[r["network"]]()
            else:
                net = load_model(r["network"])
                if "weights" in r:
                    load_weights(net, r["weights"])
            snn = convert(net, split.x_train[:cfg["n_calibration"]], normalization=r["normalization"],
                          Cm=r["Cm_pF"] * pF, v_th=r["v_th_mV"] * mV, rate_max=r["rate_max_hz"] * Hz, bias=r["bias"],
                          reset=r["reset"], synapse=r["synapse"], tau_s=r["tau_s_ms"] * ms,
                          tau_ref=r["tau_ref_ms"] * ms, leak_rule=r["leak_rule"], readout=r["readout"])
        n = int(r.get("n_test", cfg["n_test"]))
        sat = snn.saturation(r["dt_ms"] * ms)
        (out / f"mapping_run{k}.txt").write_text(
            snn.table() + "\n\nfraction of units within 10 % of min(1/tau_ref, 1/dt) on the calibration data: "
            + json.dumps(sat) + "\n")
        res = snn.evaluate(split.x_test[:n], split.y_test[:n], duration=r["T_ms"] * ms, dt=r["dt_ms"] * ms,
                           encoder=r["encoder"], device=device, batch=_batch(r.get("batch", cfg.get("batch"))),
                           time_points=int(cfg["time_points"]), progress=progress is not None,
                           seeds=tuple(range(int(r["seeds"]))), threads=cfg.get("threads"),
                           float32=bool(r["float32"]))
        label = dict(run=k, **{key: (float(v) if isinstance(v, (int, float, np.number)) else v) for key, v in r.items()})
        summ = res.summary()
        summ.pop("seeds", None)
        tables["runs"].append({**label, **{a: b for a, b in summ.items() if a not in label}})
        for t, acc, agr in zip(res.times, res.accuracy_vs_time, res.agreement_vs_time):
            tables["vs_time"].append({**label, "t_ms": t * 1e3, "accuracy": acc, "agreement": agr,
                                      "ann_accuracy": res.ann_accuracy})
        for name, c in res.layer_correlation.items():
            row = {**label, "population": name, "correlation": c}
            if res.error_terms:
                row.update(res.error_terms[name])
            tables["layers"].append(row)
        np.savez_compressed(out / f"decisions_run{k}.npz", times_s=res.times, snn=res.predictions,
                            ann=res.ann_predictions, label=split.y_test[:n])
        np.savez_compressed(out / f"scatter_run{k}.npz", **{f"{p}__ann": a for p, (a, b) in res.scatter.items()},
                            **{f"{p}__snn": b for p, (a, b) in res.scatter.items()})
        for name, rows in tables.items():  # rewrite each CSV after every run: nothing computed is lost
            pd.DataFrame(rows).to_csv(out / f"{name}.csv", index=False)
    (out / "zoo.json").write_text(json.dumps({n: zoo.record(f"mnist_{n}") for n in NETWORKS}, indent=2))
    return {name: pd.DataFrame(rows) for name, rows in tables.items()}
