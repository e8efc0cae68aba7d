"""Studies seed003_fig7 and seed003_fig8: seed 003's single-neuron Fig. 7B/C and Fig. 8B/C as
neuron-level sweeps (`bioconv.sweep`), with the analytic predictions of `bioconv.analysis` overlaid.

The set-up is seed 003's Fig. 6 and Table II/III, in units of pC, pA, nS, nF and mV: one LIF neuron
(``conductance_lif``, EL = v_reset = 0, v_th = 1 mV, Cm = 1 nF, gl = 3 nS, tau_ref = 0) fed by two
regular input trains (eq. 15) with charges w = [0.3, 0.2] pC through delta synapses; linear reset
(the paper's linear LIF) and value reset (its reset-to-zero LIF). Every (reset, window) shape is one
compiled run holding all its frequency points as neurons (the neuron level's ``inputs = 2``).

- Fig. 7 (both inputs at the same frequency f):
  B. the minimum drive ``sum w f`` that fires within the window T_w, against gl, on a frequency grid
     of +-span around the prediction of eq. 37 (`analysis.min_firing_drive`), with eq. 38 (T_w -> inf)
     and the small-input form gl v_th (`analysis.bias_from_leak_small`);
  C. the least-squares slope of the output rate (count / T) against the drive, against Cm, with the
     prediction 1/(v_th Cm) (`analysis.slope`).
- Fig. 8 (inputs at different frequencies):
  B. the same minimum drive with f2 = ratio x f1 (one line per ratio): the inputs no longer arrive
     together, and eq. 37 assumes they do;
  C. the slope over Table III's grid of (f1, f2) pairs.

These are the experiments of the rate_validation study's ``seed003`` part (Fig. 7B/8B and 7C/8C there,
both with equal frequencies), moved onto the sweep API: the same grids give the same numbers.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from brian2 import Hz, mV, ms, nF, nS, pA, pcoulomb, second

from .. import analysis, sweep
from .rate_validation import SEED003

W = np.array(SEED003["w"])  # pC
FIXED = {"neuron": "conductance_lif", "inputs": 2, "EL": "0 mV", "v_reset": "0 mV", "v_th": f"{SEED003['v_th']} mV",
         "tau_ref": "0 ms", "I_bias": "0 pA", "w_in_1": f"{W[0]} pcoulomb", "w_in_2": f"{W[1]} pcoulomb"}
RESETS = ("linear", "value")


def _eq37_drive_pA(gl_nS: float, window_s: float | None) -> float:
    return float(analysis.min_firing_drive(W.sum() * pcoulomb, SEED003["Cm"] * nF, gl_nS * nS, SEED003["v_th"] * mV,
                                           None if window_s is None else window_s * second) / pA)


def mindrive_spec(name: str, cfg: dict, ratios=(1.0,)) -> sweep.Spec:
    """Points of the minimum-drive search: per gl and frequency ratio f2/f1, ``mindrive_n`` drives
    within +-``mindrive_span`` of eq. 37's, both resets; T just past the window, so that a spike at
    t = T_w still counts (as a spike at T_w does when the window is cut from a longer run)."""
    points = []
    for gl in cfg["mindrive_gl_nS"]:
        drive = _eq37_drive_pA(gl, cfg["window_s"])
        for ratio in ratios:
            # drive = w1 f1 + w2 f2 = f1 (w1 + w2 ratio): pA / pC = Hz
            for f1 in np.linspace(1 - cfg["mindrive_span"], 1 + cfg["mindrive_span"], cfg["mindrive_n"]) * drive / (
                    W[0] + W[1] * ratio):
                for reset in RESETS:
                    points.append({"reset": reset, "gl": gl * nS, "f_in_1": float(f1) * Hz,
                                   "f_in_2": float(f1 * ratio) * Hz})
    fixed = dict(FIXED, Cm=SEED003["Cm"] * nF, dt=cfg["dt_ms"] * ms, T=(cfg["window_s"] + cfg["dt_ms"] * 1e-3) * second)
    return sweep.Spec(level="neuron", name=name, points=points, fixed=fixed)


def slope_spec(name: str, cfg: dict, pairs: list[tuple[float, float]]) -> sweep.Spec:
    """Points of the slope fit: every (f1, f2) pair at every Cm of ``slope_Cm_nF``, both resets, gl of Table II."""
    points = [{"reset": reset, "Cm": cm * nF, "f_in_1": float(f1) * Hz, "f_in_2": float(f2) * Hz}
              for cm in cfg["slope_Cm_nF"] for f1, f2 in pairs for reset in RESETS]
    fixed = dict(FIXED, gl=SEED003["gl"] * nS, dt=cfg["dt_ms"] * ms, T=cfg["duration_s"] * second)
    return sweep.Spec(level="neuron", name=name, points=points, fixed=fixed)


def _si_to(df: pd.DataFrame) -> pd.DataFrame:
    """The study's columns in the paper's units, the drive from the point's own values."""
    out = pd.DataFrame({"reset": df["reset"], "Cm_nF": df.Cm * 1e9, "gl_nS": df.gl * 1e9, "f1_Hz": df.f_in_1,
                        "f2_Hz": df.f_in_2, "drive_pA": df.drive_A * 1e12, "n_spikes": df.n_spikes,
                        "t_first_s": df.t_first_s, "count_rate_Hz": df.count_rate_Hz, "T_s": df["T"],
                        "config_hash": df.config_hash})
    return out.sort_values(["reset", "Cm_nF", "gl_nS", "f1_Hz", "f2_Hz"]).reset_index(drop=True)


def mindrive_table(points: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """Per gl (and ratio): the smallest drive that fired within T_w, per reset, and the predictions."""
    points = points.assign(ratio=(points.f2_Hz / points.f1_Hz).round(9))
    window = cfg["window_s"]
    rows = []
    for (gl, ratio), part in points.groupby(["gl_nS", "ratio"]):
        rec = {"gl_nS": gl, "ratio_f2_f1": ratio}
        for reset in RESETS:
            p = part[part.reset == reset].sort_values("drive_pA")
            fired = p[p.t_first_s <= window * (1 + 1e-12)]
            rec[f"sim_min_drive_{reset}_pA"] = float(fired.drive_pA.min()) if len(fired) else np.nan
            # a search that never switches (all fire, or none) says nothing: flag it
            rec[f"bracketed_{reset}"] = bool(0 < len(fired) < len(p))
        rec["grid_step_pA"] = float(np.diff(np.sort(part.drive_pA.unique())).mean())
        rec["eq37_window_pA"] = _eq37_drive_pA(gl, window)
        rec["eq38_infinite_pA"] = _eq37_drive_pA(gl, None)
        rec["small_input_pA"] = float(-analysis.bias_from_leak_small(gl * nS, SEED003["v_th"] * mV) / pA)
        rows.append(rec)
    out = pd.DataFrame(rows)
    sim = out.sim_min_drive_linear_pA
    for col in ("eq37_window", "eq38_infinite", "small_input"):
        out[f"{col}_rel_err"] = out[f"{col}_pA"] / sim - 1
    return out


def slope_table(points: pd.DataFrame) -> pd.DataFrame:
    """Per Cm: least-squares slope of count rate vs drive over the firing points, per reset, and 1/(v_th Cm)."""
    rows = []
    for cm, part in points.groupby("Cm_nF"):
        rec = {"Cm_nF": cm, "predicted_Hz_per_pA": float(analysis.slope(cm * nF, SEED003["v_th"] * mV) * 1e-12)}
        for reset in RESETS:
            active = part[(part.reset == reset) & (part.count_rate_Hz > 0)]
            rec[f"fit_{reset}_Hz_per_pA"] = (float(np.polyfit(active.drive_pA, active.count_rate_Hz, 1)[0])
                                             if len(active) >= 3 else np.nan)
            rec[f"{reset}_rel_err"] = rec[f"fit_{reset}_Hz_per_pA"] / rec["predicted_Hz_per_pA"] - 1
            rec[f"{reset}_points_fitted"] = len(active)
        rows.append(rec)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------- running
def _sweep(spec: sweep.Spec, store: Path, cfg: dict) -> tuple[pd.DataFrame, dict]:
    """Run (or resume) one sweep; returns its rows and what this call computed, how long it took and
    the machine's load (a shared machine's timings mean little without it)."""
    done = len(sweep.store.finished(store)) if store.exists() else 0
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    df = sweep.run(spec, store, workers=int(cfg.get("workers", 1)), progress=True)
    wall = time.perf_counter() - t0
    bad = df[df.status != "ok"]
    if len(bad):
        raise RuntimeError(f"sweep {spec.name!r}: {len(bad)} error row(s) in {store}, e.g. {bad.error.iloc[0]}")
    return df, {"points_computed_now": len(spec) - done, "wall_s": round(wall, 1),
                "load_1min_start": round(load, 1), "load_1min_end": round(os.getloadavg()[0], 1)}


def run(figure: int, cfg: dict, out: Path) -> dict[str, pd.DataFrame]:
    """Run study seed003_fig<figure> (7 or 8): its two sweeps (stores under ``out``; a re-run resumes),
    then its tables, each written to ``out`` as soon as it exists."""
    name = f"seed003_fig{figure}"
    if figure == 7:
        ratios = (1.0,)
        f = np.arange(1, cfg["slope_f_max_Hz"] + 1e-9, cfg["slope_f_step_Hz"])
        pairs = [(x, x) for x in f]
    elif figure == 8:
        ratios = tuple(cfg["mindrive_ratios"])
        grid = np.linspace(1, cfg["table3_f_max_Hz"], cfg["table3_n"])
        pairs = [(a, b) for a in grid for b in grid]
    else:
        raise ValueError(f"seed 003 figure {figure}: this study covers Fig. 7 and Fig. 8")
    tables, timings = {}, []
    for part, spec in (("mindrive", mindrive_spec(f"{name}_mindrive", cfg, ratios)),
                       ("slope", slope_spec(f"{name}_slope", cfg, pairs))):
        df, run = _sweep(spec, out / f"store_{part}", cfg)
        points = _si_to(df)
        points.to_parquet(out / f"{part}_points.parquet", index=False)
        tables[f"{part}_points"] = points
        table = mindrive_table(points, cfg) if part == "mindrive" else slope_table(points)
        table.to_csv(out / f"{part}.csv", index=False)
        tables[part] = table
        timings.append({"sweep": spec.name, "points": len(spec), "compiled_runs": int(df.task_id.nunique()),
                        "cache_hits": int(df.groupby("task_id").cache_hit.first().sum()),
                        "binary_run_s": round(float(df.groupby("task_id").run_s.first().sum()), 1), **run})
    tables["timings"] = pd.DataFrame(timings)
    tables["timings"].to_csv(out / "timings.csv", index=False)
    return tables


# ------------------------------------------------------------------------------------- report
def _md(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    from .rate_report import _md as md
    return md(df, floatfmt)


def plot(figure: int, tables: dict[str, pd.DataFrame], cfg: dict, out: Path) -> list[Path]:
    """``fig<figure>BC.png`` (minimum drive vs gl, slope vs Cm, with the predictions) and
    ``fig<figure>_rates.png`` (the rates the slopes are fitted to)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    mind, slope, points = tables["mindrive"], tables["slope"], tables["slope_points"]
    fig, (a, d, b) = plt.subplots(1, 3, figsize=(15, 4.2))
    ref = mind.drop_duplicates("gl_nS").sort_values("gl_nS")
    a.plot(ref.gl_nS, ref.eq37_window_pA, "-", color="k", lw=1, label=f"eq. 37 (window T_w = {cfg['window_s']:g} s)")
    a.plot(ref.gl_nS, ref.eq38_infinite_pA, "--", color="grey", lw=1, label="eq. 38 (T_w -> inf)")
    a.plot(ref.gl_nS, ref.small_input_pA, ":", color="grey", lw=1, label="small input: gl v_th")
    for k, (ratio, part) in enumerate(mind.groupby("ratio_f2_f1")):
        tag = "" if figure == 7 else f", f2/f1 = {ratio:g}"
        for ax in (a, d):
            y = part.sim_min_drive_linear_pA if ax is a else part.sim_min_drive_linear_pA / part.eq37_window_pA - 1
            ax.plot(part.gl_nS, y, "o", ms=6, mfc="none", color=f"C{k}", label=f"linear LIF{tag}")
            y = part.sim_min_drive_value_pA if ax is a else part.sim_min_drive_value_pA / part.eq37_window_pA - 1
            ax.plot(part.gl_nS, y, "x", ms=5, color=f"C{k}", label=f"reset-to-zero LIF{tag}")
    a.set_xscale("log")
    a.set_yscale("log")
    a.set_xlabel("gl (nS)")
    a.set_ylabel("minimum firing drive w1 f1 + w2 f2 (pA)")
    a.set_title(f"seed 003 Fig. {figure}B: minimum firing drive vs gl", fontsize=10)
    a.legend(fontsize=7)
    # the search grid's resolution: a simulated value within it of eq. 37 agrees with it
    step = ref.grid_step_pA / ref.eq37_window_pA
    d.fill_between(ref.gl_nS, -step, step, color="grey", alpha=0.2, lw=0, label="+- one grid step")
    d.axhline(0, color="k", lw=1)
    d.set_xscale("log")
    d.set_xlabel("gl (nS)")
    d.set_ylabel("simulated / eq. 37 - 1")
    d.set_title(f"Fig. {figure}B against eq. 37", fontsize=10)
    d.legend(fontsize=7)
    b.plot(slope.Cm_nF, slope.predicted_Hz_per_pA, "-", color="k", lw=1, label="1/(v_th Cm)")
    b.plot(slope.Cm_nF, slope.fit_linear_Hz_per_pA, "o", mfc="none", label="linear LIF (fit)")
    b.plot(slope.Cm_nF, slope.fit_value_Hz_per_pA, "x", label="reset-to-zero LIF (fit)")
    b.set_xlabel("Cm (nF)")
    b.set_ylabel("slope of output rate vs drive (Hz per pA)")
    b.set_title(f"seed 003 Fig. {figure}C: slope vs Cm", fontsize=10)
    b.legend(fontsize=7)
    from matplotlib.ticker import NullFormatter
    for ax in (a, d):  # log axes, labelled at the swept gl values in plain numbers
        ax.set_xticks(ref.gl_nS, [f"{g:g}" for g in ref.gl_nS])
        ax.xaxis.set_minor_formatter(NullFormatter())
    a.set_yticks([0.2, 0.5, 1, 2, 5], ["0.2", "0.5", "1", "2", "5"])
    a.yaxis.set_minor_formatter(NullFormatter())
    fig.tight_layout()
    paths = [out / f"fig{figure}BC.png"]
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, reset in zip(axes, RESETS):
        for k, (cm, part) in enumerate(points[points.reset == reset].groupby("Cm_nF")):
            part = part.sort_values("drive_pA")
            ax.plot(part.drive_pA, part.count_rate_Hz, ".", ms=3, color=f"C{k}", label=f"Cm = {cm:g} nF")
            fit = slope[slope.Cm_nF == cm].iloc[0]
            k_pred = fit.predicted_Hz_per_pA
            # the ReLU of the linear law with Table VII's exact bias for this Cm (eq. 37, T_w -> inf)
            b_exact = float(analysis.bias_from_leak(W.sum() * pcoulomb, cm * nF, SEED003["gl"] * nS,
                                                    SEED003["v_th"] * mV) / pA)
            ax.plot(part.drive_pA, k_pred * np.maximum(part.drive_pA + b_exact, 0), "-", lw=0.8, color=f"C{k}")
        ax.set_xlabel("drive w1 f1 + w2 f2 (pA)")
        ax.set_title(f"{'linear' if reset == 'linear' else 'reset-to-zero'} LIF (dots), k max(0, drive + b) (lines)",
                     fontsize=10)
    axes[0].set_ylabel(f"output rate, count / {cfg['duration_s']:g} s (Hz)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    paths.append(out / f"fig{figure}_rates.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths


def summarize(figure: int, tables: dict[str, pd.DataFrame], cfg: dict, mode: str) -> str:
    mind, slope, timings = tables["mindrive"], tables["slope"], tables["timings"]
    inputs = ("both inputs at the same frequency f" if figure == 7 else
              f"inputs at different frequencies: f2 = ratio x f1 for the minimum drive (ratios "
              f"{cfg['mindrive_ratios']}), Table III's grid of {cfg['table3_n']} x {cfg['table3_n']} pairs in "
              f"1-{cfg['table3_f_max_Hz']:g} Hz for the slope")
    out = [f"# seed003_fig{figure}: seed 003 Fig. {figure}B/C on the sweep API ({mode} settings)", "",
           f"Command: `bioconv study seed003_fig{figure}{' --full' if mode == 'full' else ''}`.", "",
           "One conductance_lif neuron per point, two regular input trains (eq. 15) with w = [0.3, 0.2] pC through "
           f"delta synapses, Cm = 1 nF, gl = 3 nS, v_th = 1 mV, EL = v_reset = 0, tau_ref = 0, dt = {cfg['dt_ms']} ms; "
           f"{inputs}. Linear LIF = linear reset, reset-to-zero LIF = value reset.", "",
           f"## Fig. {figure}B: minimum firing drive vs gl", "",
           f"The smallest drive w1 f1 + w2 f2 that fires within T_w = {cfg['window_s']} s, searched on "
           f"{cfg['mindrive_n']} drives within +-{cfg['mindrive_span']:.0%} of eq. 37's prediction per gl; "
           "`*_rel_err`: each prediction against the simulated linear-LIF value (a search the grid does not "
           "bracket is flagged `bracketed_* = False`).", "",
           _md(mind), "",
           f"## Fig. {figure}C: slope of the output rate vs drive, against Cm", "",
           f"Least-squares slope of count / {cfg['duration_s']} s against the drive over the firing points; "
           "prediction k = 1/(v_th Cm) (Table VII).", "",
           _md(slope), "",
           "## Sweeps", "",
           _md(timings), ""]
    return "\n".join(out)
