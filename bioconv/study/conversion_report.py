"""Summary (markdown) and figures of the conversion_error study."""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .rate_report import _md  # noqa: E402

SETTING = ["network", "bias", "leak_rule", "reset", "dt_ms", "rate_max_hz", "encoder", "synapse", "tau_s_ms", "readout",
           "normalization", "Cm_pF", "v_th_mV", "tau_ref_ms", "seeds"]


def _file_name(network: str) -> str:
    """A network's name fit for a file name (a network may be a path or a factory)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(network).split(":")[0]).stem + (
        "_" + str(network).split(":")[1] if ":" in str(network) else ""))


def _label(row, keys=SETTING) -> str:
    return ", ".join(f"{k}={row[k]}" for k in keys if k in row and pd.notna(row[k]))


def summarize(tables: dict[str, pd.DataFrame], cfg: dict) -> str:
    runs, vt, layers = tables["runs"], tables["vs_time"], tables["layers"]
    out = ["# conversion_error: converted SNNs vs their ANNs (MNIST subset, held-out digits)", "",
           f"Calibration: the first {cfg['n_calibration']} training digits (p99.9 normalization unless stated). "
           "Rates: activation 1 = rate_max; regular input trains; linear-reset integrate-and-fire membranes "
           "(Cm = 100 pF, v_th = 20 mV, tau_ref = 0) with delta synapses unless stated; spike-count readout.", ""]
    cols = [c for c in SETTING + ["T_ms", "n_samples", "ann_accuracy", "accuracy", "agreement",
                                  "min_layer_correlation", "synaptic_events", "undecided_fraction", "wall_s"]
            if c in runs]
    out += ["## Runs (at the full presentation time T)", "", _md(runs[cols]), ""]
    rows = []
    varying = [k for k in SETTING if k in runs and runs[k].astype(str).nunique() > 1]  # the runs table has the rest
    for k, part in vt.groupby("run"):
        r = runs[runs.run == k].iloc[0]
        part = part.sort_values("t_ms")
        hit = part[(part.agreement >= 0.995)]
        close = part[(part.accuracy >= part.ann_accuracy - 0.003)]
        rows.append(dict(run=k, setting=_label(r, varying),
                         first_T_agreement_995_ms=f"{hit.t_ms.min():g}" if len(hit) else "not within T",
                         first_T_accuracy_within_0_3_ms=f"{close.t_ms.min():g}" if len(close) else "not within T",
                         accuracy_gap_at_T_points=float(part.ann_accuracy.iloc[-1] - part.accuracy.iloc[-1]) * 100))
    out += ["## When the SNN catches up with its ANN", "",
            "First presentation time at which agreement with the ANN reaches 99.5 %, and at which accuracy comes "
            "within 0.3 points of the ANN's.", "", _md(pd.DataFrame(rows)), ""]
    out += ["## Per-layer correlation of ANN target rates with SNN rates (seed 003 eq. 16), at T", ""]
    for network, part in layers.groupby("network"):  # populations differ between networks
        piv = part.pivot_table(index="run", columns="population", values="correlation", aggfunc="first")
        out += [f"{network}:", "", _md(piv.reset_index()), ""]
    if "bias2" in layers:
        out += ["## Bias and variance of the rates (several seeds)", "",
                _md(layers.dropna(subset=["bias2"])[["run", "population", "bias2", "variance"]]), ""]
    return "\n".join(out) + "\n"


def plot(tables: dict[str, pd.DataFrame], out: Path) -> list[Path]:
    runs, vt = tables["runs"], tables["vs_time"]
    paths = []
    for network, part in vt.groupby("network"):
        fig, ax = plt.subplots(figsize=(6, 4))
        mine = runs[runs.network == network]
        varying = [k for k in SETTING if k in mine and mine[k].astype(str).nunique() > 1]  # a legend tells runs apart
        for k, p in part.groupby("run"):
            r = runs[runs.run == k].iloc[0]
            ax.plot(p.t_ms, p.accuracy * 100, "-o", ms=3, label=_label(r, varying) or f"run {k}")
        ax.axhline(part.ann_accuracy.iloc[0] * 100, color="k", ls="--", lw=1, label="ANN")
        ax.set_ylim(max(0, part.accuracy.min() * 100 - 5), 100)
        ax.set_xlabel("presentation time T (ms)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{network}: accuracy vs T")
        ax.legend(fontsize=6)
        fig.tight_layout()
        paths.append(out / f"accuracy_vs_T_{_file_name(network)}.png")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    for network, part in runs.groupby("network"):
        k = int(part.run.iloc[0])
        scat = np.load(out / f"scatter_run{k}.npz")
        pops = sorted({key.split("__")[0] for key in scat.files}, key=lambda s: scat.files.index(f"{s}__ann"))
        fig, axes = plt.subplots(1, len(pops), figsize=(2.6 * len(pops), 2.8))
        for ax, pop in zip(np.atleast_1d(axes), pops):
            a, b = scat[f"{pop}__ann"], scat[f"{pop}__snn"]
            ax.plot(a, b, ".", ms=1.5, alpha=0.5)
            lim = float(max(a.max(), b.max(), 1e-9))
            ax.plot([0, lim], [0, lim], "k--", lw=0.8)
            ax.set_title(pop, fontsize=8)
            ax.set_xlabel("ANN target rate (Hz)", fontsize=7)
        np.atleast_1d(axes)[0].set_ylabel("SNN rate (Hz)", fontsize=7)
        fig.suptitle(f"{network}, run {k}: ANN vs SNN per layer", fontsize=9)
        fig.tight_layout()
        paths.append(out / f"scatter_{_file_name(network)}.png")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    return paths
