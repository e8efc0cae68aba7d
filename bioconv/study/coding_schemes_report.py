"""Figures and summary of the coding_schemes study (`bioconv.study.coding_schemes`)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .coding_schemes import CODES  # noqa: E402

#: The comparison's columns as printed, and their headers.
COLUMNS = {
    "network": "network", "code": "code", "ann_model": "ANN", "ann_accuracy": "ANN acc. (%)",
    "snn_accuracy": "SNN acc. (%)", "agreement": "agreement (%)", "coding_steps": "coding steps",
    "latency_steps": "latency (steps)", "latency_ms": "latency (ms)",
    "first_correct_median_steps": "first correct (steps, median)", "first_correct_median_ms": "first correct (ms, median)",
    "spikes_per_neuron": "spikes/neuron", "synops_per_digit": "SynOPs/digit", "energy_proxy": "energy proxy/digit",
    "settings": "settings",
}


def _md(df: pd.DataFrame) -> str:
    return df.to_markdown(index=False, floatfmt=".4g")


def comparison_table(cmp: pd.DataFrame) -> pd.DataFrame:
    """The comparison as printed: percentages, rounded counts, a row that was not run shows its
    status in the settings column and nothing else."""
    rows = []
    order = {c: k for k, c in enumerate(CODES)}
    cmp = cmp.assign(_net=cmp.network.map({"mlp": 0, "convnet": 1}), _code=cmp.code.map(order))
    for r in cmp.sort_values(["_net", "_code"], kind="stable").to_dict("records"):
        if r.get("status") != "ok":
            rows.append({COLUMNS["network"]: r["network"], COLUMNS["code"]: r["code"], COLUMNS["ann_model"]: r["ann_model"],
                         COLUMNS["settings"]: r["status"]})
            continue
        rows.append({
            COLUMNS["network"]: r["network"], COLUMNS["code"]: r["code"], COLUMNS["ann_model"]: r["ann_model"],
            COLUMNS["ann_accuracy"]: f"{100 * r['ann_accuracy']:.1f}", COLUMNS["snn_accuracy"]: f"{100 * r['snn_accuracy']:.1f}",
            COLUMNS["agreement"]: f"{100 * r['agreement']:.1f}", COLUMNS["coding_steps"]: int(r["coding_steps"]),
            COLUMNS["latency_steps"]: int(r["latency_steps"]), COLUMNS["latency_ms"]: f"{r['latency_ms']:g}",
            COLUMNS["first_correct_median_steps"]: f"{r['first_correct_median_steps']:.0f}",
            COLUMNS["first_correct_median_ms"]: f"{r['first_correct_median_ms']:.3g}",
            COLUMNS["spikes_per_neuron"]: f"{r['spikes_per_neuron']:.3f}",
            COLUMNS["synops_per_digit"]: f"{r['synops_per_digit']:,.0f}",
            COLUMNS["energy_proxy"]: f"{r['energy_proxy']:,.0f}", COLUMNS["settings"]: r["settings"]})
    return pd.DataFrame(rows, columns=list(COLUMNS.values())).astype(object).fillna("")


def ablation_checks(ab: pd.DataFrame) -> list[str]:
    """The orderings issue 13 expects, stated with the measured numbers: at equal T and Ts ternary
    beats binary, and binary improves as Ts grows."""
    lines = []
    sign = ab[ab.part == "sign"]
    for (network, T), part in sign.groupby(["network", "steps"]):
        for Ts, g in part.groupby("Ts"):
            tern, binr = g[g.ternary.astype(bool)], g[~g.ternary.astype(bool)]
            if len(tern) and len(binr):
                t, b = tern.iloc[0], binr.iloc[0]
                def ahead(a, b):
                    return "ternary ahead" if a > b else ("tie" if a == b else "binary ahead")
                # digits, so that a difference within sampling noise reads as such
                digits = int(round(abs(t.snn - b.snn) * t.n_test)) if "n_test" in g else None
                verdict = (f"accuracy: {ahead(t.snn, b.snn)}" + (f" by {digits} digits of {int(t.n_test)}"
                                                                 if digits else "")
                           + f"; agreement: {ahead(t.agreement, b.agreement)}")
                lines.append(f"- {network}, T = {T}, Ts = {Ts}: ternary {100 * t.snn:.1f} % (agreement "
                             f"{100 * t.agreement:.1f} %), binary {100 * b.snn:.1f} % (agreement {100 * b.agreement:.1f} %): "
                             f"{verdict}.")
        binr = part[~part.ternary.astype(bool)].sort_values("Ts")
        if len(binr) > 1:
            acc = list(binr.snn)
            mono = all(b >= a for a, b in zip(acc, acc[1:]))
            lines.append(f"- {network}, T = {T}, binary over Ts = {', '.join(map(str, binr.Ts))}: accuracy "
                         f"{', '.join(f'{100 * a:.1f}' for a in acc)} %, agreement "
                         f"{', '.join(f'{100 * a:.1f}' for a in binr.agreement)} %: "
                         f"{'improves (or holds) as Ts grows' if mono else 'does NOT improve monotonically'}.")
    return lines


def vs_steps(ab: pd.DataFrame) -> pd.DataFrame:
    """Ternary, Ts = 1 rows over T (from both ablation parts), one per network and T."""
    if not len(ab):
        return ab
    sel = ab[(ab.Ts == 1) & ab.ternary.astype(bool)]
    return sel.sort_values(["network", "steps"]).drop_duplicates(["network", "steps"])


def summarize(tables: dict[str, pd.DataFrame], cfg: dict, mode: str) -> str:
    cmp = tables.get("comparison", pd.DataFrame())
    ab = tables.get("css_ablations", pd.DataFrame())
    out = ["# coding_schemes: rate vs phase vs TTFS vs CSS", "",
           f"Mode `{mode}`: `bioconv study coding_schemes{' --full' if mode == 'full' else ''}`. MNIST subset, the "
           f"first {cfg['n_test']} held-out digits; rate and CSS calibrated on the first {cfg['n_calibration']} "
           "training digits.", ""]
    if len(cmp):
        out += ["## Comparison (seed 002 Table 2, seed 004 Table II)", "",
                "Each code converts its own ANN (column ANN): rate and phase `mnist_mlp` / `mnist_convnet`; TTFS the "
                "constrained `mnist_*_ttfs` (ReLU1, weight sums 1); CSS `mnist_mlp` / `mnist_convnet_avgpool` (CSS "
                "converts no max pooling). Coding steps: rate, T / dt; TTFS, steps per window; CSS, T. Latency: until "
                "the output is read (TTFS: L windows; CSS: T + (L - 1) Ts steps of 1 ms). First correct: over the "
                "digits classified correctly, the median time from which on the decision stays the final one "
                "(`bioconv.coding.metrics.decision_time`; rate: read at the evaluation's time_points only). "
                "Spikes/neuron: hidden and output neurons, both signs for CSS. SynOPs: spikes (input included) x "
                "out-degrees; energy proxy: SynOPs + NeuronOPs (non-input neurons x the run's steps), seed 004 eq. 22.",
                "", _md(comparison_table(cmp)), ""]
    if len(ab):
        cols = ["part", "network", "steps", "Ts", "ternary", "encoder", "n_test", "ann", "snn", "agreement",
                "latency_steps", "worst_layer_p99_9_error", "spikes_pos_per_neuron", "spikes_neg_per_neuron",
                "synops_pos_per_digit", "synops_neg_per_digit", "energy_proxy", "sim_s"]
        out += ["## CSS ablations", "",
                "sign: ternary TSA neurons and encoder vs binary ones (no negative spikes, threshold beta^Ts, the "
                "greedy encoder), at each silent period Ts (Ts = 0: without the silent period). T: ternary, Ts = 1, "
                "accuracy vs coding steps. worst_layer_p99_9_error: the 99.9th percentile of |decoded - ReLU(W "
                "decoded_in + b)| over unsaturated neurons, in units of theta_l, worst hidden layer.", "",
                _md(ab[[c for c in cols if c in ab]]), "", "Orderings:", "", *ablation_checks(ab), ""]
        vs = vs_steps(ab)
        if len(vs):
            out += ["Accuracy vs T (ternary, Ts = 1): " + "; ".join(
                f"{r.network} T = {r.steps}: {100 * r.snn:.1f} % (ANN {100 * r.ann:.1f} %, agreement "
                f"{100 * r.agreement:.1f} %)" for r in vs.itertuples()), ""]
    out += ["Figures: `accuracy_vs_latency.png`, `energy_vs_accuracy.png`" + (", `css_vs_steps.png`" if len(ab) else "")
            + ". Tables: `comparison.csv`, `css_ablations.csv`.", ""]
    return "\n".join(out)


def _finish(fig, ax, path: Path) -> Path:
    """One legend entry per label (several points share a code's label), then the figure saved."""
    handles, labels = ax.get_legend_handles_labels()
    keep = dict(zip(labels, handles))
    ax.legend(keep.values(), keep.keys(), fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot(tables: dict[str, pd.DataFrame], out: Path) -> list[Path]:
    paths = []
    cmp = tables.get("comparison", pd.DataFrame())
    ab = tables.get("css_ablations", pd.DataFrame())
    ok = cmp[cmp.status == "ok"] if len(cmp) else cmp
    markers = {"mlp": "o", "convnet": "s"}
    colours = dict(zip(CODES, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    if len(ok):
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for r in ok.itertuples():
            ax.plot(r.latency_ms, 100 * r.snn_accuracy, markers.get(r.network, "^"), color=colours[r.code],
                    label=f"{r.code}, {r.network}")
        vs = vs_steps(ab)
        for network, part in (vs.groupby("network") if len(vs) else []):
            # CSS latency in ms: one coding step is 1 ms (the scheme's default step)
            ax.plot(part.latency_steps, 100 * part.snn, "--", color=colours["css"], lw=0.8,
                    label=f"css, {network}, T = {', '.join(map(str, part.steps))}")
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms): until the output is read")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title("Accuracy vs latency per code")
        paths.append(_finish(fig, ax, out / "accuracy_vs_latency.png"))

        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for r in ok.itertuples():
            ax.plot(100 * r.snn_accuracy, r.energy_proxy, markers.get(r.network, "^"), color=colours[r.code],
                    label=f"{r.code}, {r.network}")
        ax.set_yscale("log")
        ax.set_xlabel("test accuracy (%)")
        ax.set_ylabel("energy proxy per digit (SynOPs + NeuronOPs)")
        ax.set_title("Energy proxy vs accuracy per code")
        paths.append(_finish(fig, ax, out / "energy_vs_accuracy.png"))
    if len(ab):
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        vs = vs_steps(ab)
        for network, part in vs.groupby("network"):
            ax.plot(part.steps, 100 * part.snn, "-o", ms=3, label=f"{network} ternary, Ts = 1")
            ax.axhline(100 * part.ann.iloc[0], ls=":", lw=0.8, color=ax.lines[-1].get_color(), label=f"{network} ANN")
        sign = ab[ab.part == "sign"]
        for (network, ternary, T), part in sign.groupby(["network", "ternary", "steps"]):
            part = part.sort_values("Ts")
            ax.plot([T + 0.15 * k for k in range(len(part))], 100 * part.snn, "x" if not ternary else "+", ms=6,
                    label=f"{network} {'ternary' if ternary else 'binary'}, T = {T}, Ts = {', '.join(map(str, part.Ts))}")
        ax.set_xlabel("coding steps T")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title("CSS: accuracy vs T; ternary vs binary")
        paths.append(_finish(fig, ax, out / "css_vs_steps.png"))
    return paths
