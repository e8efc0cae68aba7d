"""Study seed003_fig13: seed 003 Fig. 13(b, c) as a network-level sweep (`bioconv.sweep`).

Fig. 13 compares the linear LIF network (linear reset) with the LIF network (reset to zero) on MNIST:
(b) accuracy against the range of the input coding frequency [0, k], (c) accuracy against the
membrane conductance gl. Here: the converted MNIST ConvNet (seed 003 Table V) on the first ``n_test``
held-out digits, regular input trains (eq. 15), a window of ``T_s`` per digit, over a grid of
rate_max (the rate that codes activation 1: the input frequency range [0, rate_max], every layer's
rates scaling with it) x gl (a leak added to every membrane, towards the reset potential) x reset.
Both are sweepable parameters: each (reset, dt) shape compiles once. A few points at a finer dt check
what the grid's step costs.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from brian2 import Hz, ms, nS, second

from .. import sweep

RESETS = ("linear", "value")
LABEL = {"linear": "linear LIF (linear reset)", "value": "LIF (reset to zero)"}


def spec(cfg: dict) -> sweep.Spec:
    """The grid reset x rate_max x gl at ``dt_ms``, and the check points at ``check_dt_ms``."""
    points = [{"reset": reset, "dt": cfg["dt_ms"] * ms, "rate_max": r * Hz, "gl": g * nS}
              for reset in RESETS for r in cfg["rate_max_Hz"] for g in cfg["gl_nS"]]
    points += [{"reset": reset, "dt": cfg["check_dt_ms"] * ms, "rate_max": r * Hz, "gl": g * nS}
               for reset in RESETS for r, g in cfg["check_points"]]
    return sweep.Spec(level="network", name="seed003_fig13", points=points,
                      fixed={"network": cfg["network"], "n_test": cfg["n_test"], "T": cfg["T_s"] * second,
                             "encoder": "regular"})


def run(cfg: dict, out: Path) -> dict[str, pd.DataFrame]:
    """Run the sweep into ``out``/store (a re-run resumes) and write the tidy table ``points``."""
    s = spec(cfg)
    store = out / "store"
    done = len(sweep.store.finished(store)) if store.exists() else 0
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    df = sweep.run(s, store, workers=int(cfg.get("workers", 1)), progress=True)
    wall = time.perf_counter() - t0
    bad = df[df.status != "ok"]
    if len(bad):
        raise RuntimeError(f"sweep {s.name!r}: {len(bad)} error row(s) in {out / 'store'}, e.g. {bad.error.iloc[0]}")
    points = pd.DataFrame({
        "reset": df["reset"], "dt_ms": df.dt * 1e3, "rate_max_Hz": df.rate_max, "gl_nS": df.gl * 1e9,
        "accuracy": df.accuracy, "ann_accuracy": df.ann_accuracy, "agreement": df.agreement,
        "undecided_fraction": df.undecided_fraction, "min_layer_correlation": df.min_layer_correlation,
        "synaptic_events": df.synaptic_events, "n_samples": df.n_samples, "task_wall_s": df.task_wall_s,
        "task_id": df.task_id, "config_hash": df.config_hash,
    }).sort_values(["dt_ms", "reset", "rate_max_Hz", "gl_nS"]).reset_index(drop=True)
    # the run, for the record: tasks ran one after another per worker, so their sum is the compute time
    tasks = df.groupby("task_id").agg(points=("config_hash", "size"), wall_s=("task_wall_s", "first"),
                                      cache_hit=("cache_hit", lambda c: bool(np.all([x[0] for x in c]))))
    points.to_parquet(out / "points.parquet", index=False)
    points.drop(columns=["task_id"]).to_csv(out / "points.csv", index=False)
    timing = pd.DataFrame([{"points": len(s), "tasks": len(tasks), "compiles": int((~tasks.cache_hit).sum()),
                            "sum_task_wall_s": round(float(tasks.wall_s.sum()), 1), "points_computed_now": len(s) - done,
                            "wall_s_now": round(wall, 1), "workers": int(cfg.get("workers", 1)),
                            "load_1min_start": round(load, 1), "load_1min_end": round(os.getloadavg()[0], 1)}])
    timing.to_csv(out / "timings.csv", index=False)
    return {"points": points, "timings": timing, "rows": df}


def plot(tables: dict[str, pd.DataFrame], cfg: dict, out: Path) -> list[Path]:
    """``fig13bc.png`` (accuracy vs rate_max at gl = 0, and vs gl at the paper's range) and
    ``fig13_frontier.png`` (accuracy over rate_max x gl, per reset), from the store's rows."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..sweep import plots
    df = tables["rows"]
    grid = df[np.isclose(df.dt, cfg["dt_ms"] * 1e-3)]
    ann = float(df.ann_accuracy.iloc[0])
    fig, (b, c) = plt.subplots(1, 2, figsize=(10, 4))
    plots.line(grid, "rate_max", "accuracy", hue="reset", where={"gl": 0 * nS}, ax=b)
    b.set_xscale("log")
    b.set_title(f"Fig. 13(b): accuracy vs input range [0, rate_max], gl = 0")
    plots.line(grid, "gl", "accuracy", hue="reset", where={"rate_max": cfg["paper_rate_max_Hz"] * Hz}, ax=c)
    c.set_title(f"Fig. 13(c): accuracy vs gl, rate_max = {cfg['paper_rate_max_Hz']:g} Hz")
    for ax in (b, c):
        ax.axhline(ann, color="k", lw=0.8, ls="--", label=f"ANN ({ann:.1%})")
        ax.legend(fontsize=7)
    fig.suptitle(f"MNIST ConvNet, {cfg['n_test']} digits, T = {cfg['T_s']:g} s, dt = {cfg['dt_ms']:g} ms", fontsize=9)
    fig.tight_layout()
    paths = [out / "fig13bc.png"]
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, reset in zip(axes, RESETS):
        plots.heatmap(grid, "rate_max", "gl", "accuracy", where={"reset": reset}, ax=ax)
        ax.set_title(LABEL[reset])
        part = grid[grid["reset"] == reset].pivot_table(index="gl", columns="rate_max", values="accuracy")
        for yi in range(part.shape[0]):
            for xi in range(part.shape[1]):
                ax.text(xi, yi, f"{100 * part.iloc[yi, xi]:.1f}", ha="center", va="center", fontsize=7,
                        color="w" if part.iloc[yi, xi] < part.values.max() - 0.2 else "k")
    fig.suptitle(f"accuracy (%) over rate_max x gl; ANN {ann:.1%}", fontsize=9)
    fig.tight_layout()
    paths.append(out / "fig13_frontier.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths


def _md(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    from .rate_report import _md as md
    return md(df, floatfmt)


def summarize(tables: dict[str, pd.DataFrame], cfg: dict, mode: str) -> str:
    points, timing = tables["points"], tables["timings"]
    grid = points[np.isclose(points.dt_ms, cfg["dt_ms"])]
    ann = float(points.ann_accuracy.iloc[0])
    out = [f"# seed003_fig13: seed 003 Fig. 13(b, c) on the sweep API ({mode} settings)", "",
           f"Command: `bioconv study seed003_fig13{' --full' if mode == 'full' else ''}`.", "",
           f"MNIST {cfg['network']} (`bioconv.zoo`), ANN accuracy {ann:.1%} on the first {cfg['n_test']} held-out "
           f"digits; regular inputs, T = {cfg['T_s']} s per digit, dt = {cfg['dt_ms']} ms; a decision needs a "
           "unique winner (ties and silence are wrong). Accuracy in %, rows gl (nS), columns rate_max (Hz).", ""]
    for reset in RESETS:
        table = (grid[grid["reset"] == reset].pivot_table(index="gl_nS", columns="rate_max_Hz", values="accuracy")
                 * 100)
        out += [f"## {LABEL[reset]}", "", _md(table.rename(columns=lambda r: f"{r:g} Hz").reset_index(), ".1f"), ""]
    # the frontier: per gl, the lowest rate_max within 1 point of the ANN
    rows = []
    for (reset, gl), part in grid.groupby(["reset", "gl_nS"]):
        ok = part[part.accuracy >= ann - 0.01].rate_max_Hz
        rows.append({"reset": reset, "gl_nS": gl, "lowest rate_max within 1 pt of the ANN (Hz)":
                     float(ok.min()) if len(ok) else np.nan, "best accuracy": float(part.accuracy.max())})
    out += ["## Frontier", "", _md(pd.DataFrame(rows)), ""]
    check = points[~np.isclose(points.dt_ms, cfg["dt_ms"])]
    if len(check):
        same = grid.merge(check, on=["reset", "rate_max_Hz", "gl_nS"], suffixes=("", "_fine"))
        out += ["## The grid's step", "", f"The same points at dt = {cfg['check_dt_ms']} ms:", "",
                _md(same[["reset", "rate_max_Hz", "gl_nS", "accuracy", "accuracy_fine", "agreement",
                          "agreement_fine"]]), ""]
    out += ["## Run", "", _md(timing), ""]
    return "\n".join(out)
