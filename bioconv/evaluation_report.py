"""An evaluation's results as files people and programs read: tidy CSV tables, a JSON and a Markdown
summary with plain names and units, and figures (`bioconv evaluate --out DIR`)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def _plain(v):
    """JSON-able value: numpy scalars and arrays as Python numbers and lists."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


def write(result, out, *, network: str, data: str, labelled: bool) -> dict[str, Path]:
    """Write ``result`` (an `EvaluationResult`) under ``out``; returns the files by role. Without
    labels (``labelled=False``) the labels were the ANN's decisions, so accuracy is left out."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    vs_time = pd.DataFrame({"time_ms": np.asarray(result.times) * 1e3,
                            "agreement": result.agreement_vs_time})
    if labelled:
        vs_time.insert(1, "accuracy", result.accuracy_vs_time)
    files["vs_time"] = out / "vs_time.csv"
    vs_time.to_csv(files["vs_time"], index=False)
    layers = pd.DataFrame({"population": list(result.layer_correlation),
                           "rate_correlation": list(result.layer_correlation.values())})
    if result.error_terms:
        layers["bias2_hz2"] = [result.error_terms[p]["bias2"] for p in layers.population]
        layers["variance_hz2"] = [result.error_terms[p]["variance"] for p in layers.population]
    files["layers"] = out / "layers.csv"
    layers.to_csv(files["layers"], index=False)

    summary = {"network": network, "data": data, "samples": result.n_samples,
               "duration_ms": result.duration * 1e3, "dt_ms": result.dt * 1e3,
               "accuracy": result.accuracy if labelled else None, "ann_accuracy": result.ann_accuracy if labelled else None,
               "agreement": result.agreement, "undecided_fraction": result.undecided_fraction,
               "min_layer_correlation": float(np.min(list(result.layer_correlation.values())))
               if result.layer_correlation else None,
               "synaptic_events": result.synaptic_events, "wall_s": result.wall_s, "build_s": result.build_s,
               "run_s": result.run_s, "settings": result.settings}
    files["summary_json"] = out / "summary.json"
    files["summary_json"].write_text(json.dumps(_plain(summary), indent=1) + "\n")
    files["summary_md"] = out / "summary.md"
    files["summary_md"].write_text(_markdown(summary, layers, labelled))
    files.update(_figures(result, out, labelled))
    return files


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f} %"


def _markdown(s: dict, layers: pd.DataFrame, labelled: bool) -> str:
    st = s["settings"]
    rows = [("network", s["network"]), ("data", f"{s['data']} ({s['samples']} samples"
                                                + ("" if labelled else ", no labels: scored against the ANN") + ")"),
            ("presentation time", f"{s['duration_ms']:g} ms"), ("time step dt", f"{s['dt_ms']:g} ms"),
            ("encoder", st.get("encoder")), ("device", st.get("device")),
            ("SNN accuracy", _pct(s["accuracy"])), ("ANN accuracy", _pct(s["ann_accuracy"])),
            ("agreement with the ANN", _pct(s["agreement"])), ("undecided", _pct(s["undecided_fraction"])),
            ("lowest layer rate correlation", "n/a" if s["min_layer_correlation"] is None
             else f"{s['min_layer_correlation']:.4f}"),
            ("synaptic events", f"{s['synaptic_events']:,}"),
            ("wall time", f"{s['wall_s']:.1f} s (build {s['build_s']:.1f} s, runs {s['run_s']:.1f} s)")]
    lines = ["# Evaluation", "", "| quantity | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    lines += ["", "Per population: correlation of the SNN's rates with the ANN's target rates.", "",
              layers.to_markdown(index=False, floatfmt=".4f"), ""]
    return "\n".join(lines)


def _figures(result, out: Path, labelled: bool) -> dict[str, Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = {}
    fig, ax = plt.subplots(figsize=(5, 3.5))
    t = np.asarray(result.times) * 1e3
    if labelled:
        ax.plot(t, np.asarray(result.accuracy_vs_time) * 100, "-o", ms=3, label="SNN accuracy")
        ax.axhline(result.ann_accuracy * 100, color="k", ls="--", lw=1, label="ANN accuracy")
    ax.plot(t, np.asarray(result.agreement_vs_time) * 100, "-s", ms=3, label="agreement with the ANN")
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7)
    fig.tight_layout()
    files["figure_vs_time"] = out / "vs_time.png"
    fig.savefig(files["figure_vs_time"], dpi=120)
    plt.close(fig)
    if result.scatter:
        pops = list(result.scatter)
        fig, axes = plt.subplots(1, len(pops), figsize=(2.6 * len(pops), 2.8), squeeze=False)
        for ax, pop in zip(axes[0], pops):
            a, b = result.scatter[pop]
            ax.plot(a, b, ".", ms=1.5, alpha=0.5)
            lim = float(max(np.max(a, initial=0), np.max(b, initial=0), 1e-9))
            ax.plot([0, lim], [0, lim], "k--", lw=0.8)
            ax.set_title(pop, fontsize=8)
            ax.set_xlabel("ANN target rate (Hz)", fontsize=7)
        axes[0][0].set_ylabel("SNN rate (Hz)", fontsize=7)
        fig.tight_layout()
        files["figure_layers"] = out / "layers.png"
        fig.savefig(files["figure_layers"], dpi=120)
        plt.close(fig)
    return files
