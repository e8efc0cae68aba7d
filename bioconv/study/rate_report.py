"""Summary (markdown) and figures of the rate_validation study, from its result tables."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .rate_validation import SEED003  # noqa: E402


def _md(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        cells = [format(v, floatfmt) if isinstance(v, (float, np.floating)) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fi_error_table(fi: pd.DataFrame) -> pd.DataFrame:
    """Max |relative error| of simulated vs analytic rate, per model, reset and dt."""
    valid = fi.dropna(subset=["rel_error"])
    return (valid.assign(abs_err=valid.rel_error.abs())
            .groupby(["model", "reset", "dt_ms"]).abs_err.max().unstack("dt_ms"))


def summarize(tables: dict[str, pd.DataFrame], cfg: dict) -> str:
    out = ["# rate_validation: analytic rate formulas vs Brian2 simulation", ""]
    fi = tables.get("fi")
    if fi is not None:
        err = fi_error_table(fi)
        dts = sorted(fi.dt_ms.unique())
        c = cfg["fi"]
        out += ["## 1. LIF and perfect integrator under constant current (`lif_rate`, FORMULAS §2)", "",
                f"Rates from inter-spike intervals (spikes after the first) over {c['duration_s']} s; "
                f"target rates {c['f_min_Hz']} Hz to {c['f_max_fraction']}/tau_ref, {c['n_rates']} per setting; "
                f"Cm in {c['Cm_pF']} pF, gl in {c['gl_nS']} nS, tau_ref in {c['tau_ref_ms']} ms; "
                f"EL = v_reset = {c['EL_mV']} mV, v_th = {c['v_th_mV']} mV. "
                "Entries: maximum |simulated/analytic - 1| over all points.", "",
                _md(err.rename(columns=lambda d: f"dt = {d:g} ms").reset_index())]
        dropped = int(fi.rel_error.isna().sum())
        if dropped:
            out += ["", f"{dropped} points gave fewer than 3 spikes or an analytic rate of 0 and are left out "
                    "(see `fi.csv`)."]
        finest = fi[fi.dt_ms == dts[0]]
        by_ref = (finest.assign(abs_err=finest.rel_error.abs()).groupby(["model", "reset", "tau_ref_ms"])
                  .abs_err.max().unstack("tau_ref_ms"))
        out += ["", f"At the finest step (dt = {dts[0]:g} ms), per tau_ref:", "",
                _md(by_ref.rename(columns=lambda t: f"tau_ref = {t:g} ms").reset_index())]
        signed = finest.groupby(["model", "reset"]).rel_error.mean()
        out += ["", "Mean signed error at the finest step (positive: simulation fires faster): " +
                ", ".join(f"{m} {r}: {v:+.2e}" for (m, r), v in signed.items()) + "."]
    if "seed003_rates" in tables:
        out += _seed003_summary(tables, cfg["seed003"])
    return "\n".join(out) + "\n"


def _seed003_summary(tables, c) -> list[str]:
    rates, mind, slope = tables["seed003_rates"], tables["seed003_mindrive"], tables["seed003_slope"]
    bound = 1.0 / c["duration_s"]
    t2 = rates[rates.exp == "table2"]
    t3 = rates[rates.exp == "table3"]
    out = ["", "## 2. Seed 003 single neuron (Table II/III, Fig. 7/8; FORMULAS §3)", "",
           "Two regular inputs (eq. 15), w = [0.3, 0.2] pC, gl = 3 nS, Cm = 1 nF, v_th = 1 mV, "
           f"EL = v_reset = 0, tau_ref = 0, dt = {c['dt_ms']} ms; output rate = count / {c['duration_s']} s "
           f"(counting bound 1/T = {bound:g} Hz). ReLU: k max(0, sum w f + b) with k = 1/(v_th Cm) and the "
           "paper's b = -2.16 pA.", "",
           "### Table II (both inputs at f = 1-30 Hz)", ""]
    rows = []
    for label, col, ref in [("linear LIF vs ReLU", "linear_Hz", "relu_Hz"),
                            ("reset-to-zero LIF vs ReLU", "value_Hz", "relu_Hz"),
                            ("reset-to-zero LIF vs input-count law f/n (eq. 12, 39-41)", "value_Hz", "count_law_Hz"),
                            ("linear LIF vs input-count law", "linear_Hz", "count_law_Hz")]:
        d = t2[col] - t2[ref]
        active = t2[ref] > 1.0
        rel = (d[active] / t2[ref][active]).abs().max()
        rows.append(dict(comparison=label, max_abs_Hz=d.abs().max(), mean_signed_Hz=d.mean(),
                         max_rel_where_ref_above_1Hz=rel))
    out += [_md(pd.DataFrame(rows)), ""]
    fit = t2[t2.linear_Hz > 0]
    k_fit, c_fit = np.polyfit(fit.drive_pA, fit.linear_Hz, 1)
    out += [f"Least-squares line through the firing linear-LIF points: slope {k_fit:.4f} Hz/pA (Table VII: "
            f"{1 / (SEED003['Cm'] * SEED003['v_th']):.4f}), intercept bias {c_fit / k_fit:+.3f} pA (Table VII: "
            f"{t2.b_exact_pA.iloc[0]:+.3f} pA). Table VII's bias is the firing onset; above onset the linear LIF "
            "loses only gl <V> to the leak, and its mean potential <V> is below the onset value, so it runs "
            "above the ReLU line by a roughly constant offset.", ""]
    law = t2[t2.relu_exact_b_Hz > 0]
    gap = (law.count_law_Hz - law.relu_exact_b_Hz) / law.relu_exact_b_Hz
    within = law.f1_Hz[gap.abs() <= 0.1]
    out += ["Where the exact input-count law and the linear law (with the exact bias) part ways "
            "(relative difference, count law vs linear):", "",
            _md(pd.DataFrame(dict(f_Hz=law.f1_Hz, count_law_Hz=law.count_law_Hz,
                                  linear_law_Hz=law.relu_exact_b_Hz, rel_diff=gap))
                .iloc[:: max(1, len(law) // 10)]), "",
            ("They agree within 10 % for f in [" + f"{within.min():g}, {within.max():g}] Hz"
             if len(within) else "They never agree within 10 %") +
            f"; at {law.f1_Hz.max():g} Hz the count law is {gap.iloc[-1]:+.1%} off the linear law.", ""]
    out += ["### Table III (inputs at different frequencies, 1-60 Hz)", ""]
    rows = []
    for label, col in [("linear LIF vs ReLU", "linear_Hz"), ("reset-to-zero LIF vs ReLU", "value_Hz")]:
        d = t3[col] - t3.relu_Hz
        active = t3.relu_Hz > 1.0
        rows.append(dict(comparison=label, points=len(t3), max_abs_Hz=d.abs().max(), mean_signed_Hz=d.mean(),
                         max_rel_where_relu_above_1Hz=(d[active] / t3.relu_Hz[active]).abs().max()))
    out += [_md(pd.DataFrame(rows)), ""]
    out += ["### Minimum firing drive vs gl (Fig. 7B/8B; Table VII bias, eq. 37/38)", "",
            f"Smallest drive sum w f that fires within T_w = {c['window_s']} s, searched on a grid of "
            f"{c['mindrive_n']} frequencies (+-{c['mindrive_span']:.0%}) per gl; relative errors of each "
            "prediction vs the simulated value (linear and reset-to-zero LIF agree: they differ only after "
            "the first spike).", ""]
    m = mind.copy()
    sim = m.sim_min_drive_linear_pA
    for col in ["eq37_window_pA", "eq38_infinite_pA", "small_input_pA"]:
        m[col.replace("_pA", "_rel_err")] = m[col] / sim - 1
    out += [_md(m[["gl_nS", "sim_min_drive_linear_pA", "grid_step_pA", "eq37_window_pA", "eq37_window_rel_err",
                   "eq38_infinite_pA", "eq38_infinite_rel_err", "small_input_pA", "small_input_rel_err"]]), ""]
    out += ["### Slope vs Cm (Fig. 7C/8C; k = 1/(v_th Cm))", "",
            "Least-squares slope of output rate vs drive over the firing points (f = 1-"
            f"{c['slope_f_max_Hz']:g} Hz, both inputs at f).", ""]
    s = slope.copy()
    for r in ("linear", "value"):
        s[f"{r}_rel_err"] = s[f"fit_{r}_Hz_per_pA"] / s.predicted_Hz_per_pA - 1
    out += [_md(s)]
    return out


def plot(tables: dict[str, pd.DataFrame], out: Path) -> list[Path]:
    """Write the study's figures to ``out``; returns their paths."""
    paths = []
    fi = tables.get("fi")
    if fi is not None:
        paths += [_plot_fi_curves(fi, out / "fi_curves.png"), _plot_fi_error(fi, out / "fi_error_vs_dt.png")]
    if "seed003_rates" in tables:
        paths += _plot_seed003(tables, out)
    return paths


def _plot_fi_curves(fi, path):
    finest = fi[fi.dt_ms == fi.dt_ms.min()]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, reset in zip(axes, ("linear", "value")):
        part = finest[(finest.model == "conductance_lif") & (finest.reset == reset)]
        for (Cm, gl, tr), p in part.groupby(["Cm_pF", "gl_nS", "tau_ref_ms"]):
            p = p.sort_values("I_pA")
            line, = ax.plot(p.I_pA, p.analytic_Hz, "-", lw=1)
            ax.plot(p.I_pA, p.sim_Hz, "o", ms=3, color=line.get_color(),
                    label=f"Cm={Cm:g} pF, gl={gl:g} nS, tau_ref={tr:g} ms")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"LIF, {reset} reset, dt = {finest.dt_ms.min():g} ms")
        ax.set_xlabel("I (pA)")
    axes[0].set_ylabel("rate (Hz): lines analytic, dots simulated")
    axes[1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_fi_error(fi, path):
    err = fi_error_table(fi)
    fig, ax = plt.subplots(figsize=(5, 4))
    for (model, reset), row in err.iterrows():
        ax.loglog(row.index, row.values, "o-", label=f"{model}, {reset}")
    ax.axhline(0.01, color="grey", ls="--", lw=1, label="1 %")
    ax.set_xlabel("dt (ms)")
    ax.set_ylabel("max |sim/analytic - 1|")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_seed003(tables, out):
    rates, mind, slope = tables["seed003_rates"], tables["seed003_mindrive"], tables["seed003_slope"]
    paths = []
    t2 = rates[rates.exp == "table2"]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(t2.f1_Hz, t2.relu_Hz, "-", label="ReLU, b = -2.16")
    ax.plot(t2.f1_Hz, t2.linear_Hz, "o", ms=4, label="linear LIF (sim)")
    ax.plot(t2.f1_Hz, t2.value_Hz, "s", ms=4, label="reset-to-zero LIF (sim)")
    ax.plot(t2.f1_Hz, t2.count_law_Hz, "k:", label="input-count law f/n")
    ax.set_xlabel("input frequency (Hz)")
    ax.set_ylabel("output rate (Hz)")
    ax.set_title("seed 003 Table II / Fig. 7A")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out / "seed003_table2.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    t3 = rates[rates.exp == "table3"]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(t3.relu_Hz, t3.linear_Hz, "o", ms=3, label="linear LIF")
    ax.plot(t3.relu_Hz, t3.value_Hz, "s", ms=3, label="reset-to-zero LIF")
    lim = float(max(t3.relu_Hz.max(), t3.linear_Hz.max()))
    ax.plot([0, lim], [0, lim], "k--", lw=1)
    ax.set_xlabel("ReLU output (Hz)")
    ax.set_ylabel("simulated output (Hz)")
    ax.set_title("seed 003 Table III / Fig. 8A")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out / "seed003_table3.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(mind.gl_nS, mind.sim_min_drive_linear_pA, "o", label="simulated (T_w window)")
    a.plot(mind.gl_nS, mind.eq37_window_pA, "-", label="eq. 37 (window T_w)")
    a.plot(mind.gl_nS, mind.eq38_infinite_pA, "--", label="eq. 38 (T_w -> inf)")
    a.plot(mind.gl_nS, mind.small_input_pA, ":", label="small input: gl v_th")
    a.set_xlabel("gl (nS)")
    a.set_ylabel("minimum firing drive sum w f (pA)")
    a.legend(fontsize=7)
    b.plot(slope.Cm_nF, slope.predicted_Hz_per_pA, "-", label="1/(v_th Cm)")
    b.plot(slope.Cm_nF, slope.fit_linear_Hz_per_pA, "o", label="linear LIF (fit)")
    b.plot(slope.Cm_nF, slope.fit_value_Hz_per_pA, "s", label="reset-to-zero LIF (fit)")
    b.set_xlabel("Cm (nF)")
    b.set_ylabel("slope (Hz per pA)")
    b.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out / "seed003_mindrive_slope.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths
