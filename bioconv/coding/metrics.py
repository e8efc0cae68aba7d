"""Metrics for temporal codes, defined once for every coding scheme (issue 11 item 5).

Each function takes plain arrays (what a scheme's simulation gives) and knows nothing of a
particular code, so that TTFS (`bioconv.coding.ttfs`) and later schemes (CSS, issue 13) compute
them the same way and a scheme's `CodingScheme.metrics` exposes them:

- `decisions`, `decision_time`: the readout's decision at each read time (a unique winner, else
  undecided, -1) and, per sample, the first read time after which the decision stays the final one;
- `spikes_per_neuron`: mean spikes per neuron and presentation, per layer and over all layers;
- `synops`, `neuron_updates`, `energy_proxy`: seed 004 eq. 22, ``P = SynOPs + NeuronOPs``, with
  SynOPs counted from the simulated spikes times their out-degrees;
- `layer_correlation`: per layer, the Pearson correlation of decoded (e.g. spike-time) activations
  with the ANN's, over the units that produced a value;
- `accuracy_vs_steps`: accuracy and agreement of ``SNN.evaluate`` at each number of coding steps
  (steps per window for TTFS, T for CSS);
- `window_fractions`, `plot_spike_times`: where the spikes fall relative to their layer's window
  (seed 004 Fig. 7), and a histogram of the spike-time distribution per layer.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import BioconvError

UNDECIDED = -1


def decisions(scores) -> np.ndarray:
    """Decisions (N, K) from readout scores (N, K, n_out) read at K times: the argmax where it is a
    unique winner, else `UNDECIDED` (-1). A tie (for instance all scores equal before any output
    has moved) is no decision, never class 0."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 3 or scores.shape[2] < 1:
        raise BioconvError(f"decisions: scores must be (samples, read times, outputs), got shape {scores.shape}")
    top = scores.max(axis=2, keepdims=True)
    unique = (scores == top).sum(axis=2) == 1
    return np.where(unique, scores.argmax(axis=2), UNDECIDED)


def decision_time(scores, times) -> np.ndarray:
    """Per sample, the first of ``times`` (K,) from which on the decision (read from ``scores``,
    (N, K, n_out), see `decisions`) equals the final one, at ``times[-1]``; NaN for a sample whose
    final decision is undecided. A sample decided from the first read time on gets ``times[0]``."""
    times = np.asarray(times, dtype=np.float64)
    pred = decisions(scores)
    if pred.shape[1] != len(times):
        raise BioconvError(f"decision_time: {pred.shape[1]} read times in the scores, {len(times)} times given")
    if np.any(np.diff(times) <= 0):
        raise BioconvError("decision_time: times must increase")
    final = pred[:, -1:]
    differs = pred != final
    # the last read time that still differs from the final decision; the decision time is the next one
    any_diff = differs.any(axis=1)
    last_diff = len(times) - 1 - np.argmax(differs[:, ::-1], axis=1)
    first_stable = np.where(any_diff, last_diff + 1, 0)
    out = times[np.minimum(first_stable, len(times) - 1)]
    return np.where(final[:, 0] == UNDECIDED, np.nan, out)


def spikes_per_neuron(counts: dict) -> dict:
    """Mean spikes per neuron and presentation: ``{layer: mean}`` for ``counts`` ``{layer: (N, size)}``
    (spikes of each neuron in each sample), plus ``"all"``, the mean over every neuron of every layer
    given (weighted by layer size, not a mean of the layer means)."""
    out, total, neurons = {}, 0.0, 0
    for name, c in counts.items():
        c = np.asarray(c, dtype=np.float64)
        if c.ndim != 2:
            raise BioconvError(f"spikes_per_neuron: counts of layer {name!r} must be (samples, neurons), got {c.shape}")
        out[name] = float(c.mean())
        total += float(c.sum()) / len(c)
        neurons += c.shape[1]
    out["all"] = total / neurons if neurons else float("nan")
    return out


def synops(counts: dict, out_degree: dict) -> np.ndarray:
    """Synaptic operations per sample (N,): every spike of a neuron counts once per outgoing synapse,
    ``sum over layers of counts[layer] @ out_degree[layer]``. ``counts``: ``{layer: (N, size)}``
    spikes; ``out_degree``: ``{layer: (size,)}`` outgoing synapses of each neuron as simulated. A
    layer with spikes but no out-degree given is refused by name (its events would be lost)."""
    missing = sorted(set(counts) - set(out_degree))
    if missing:
        raise BioconvError(f"synops: no out-degree for the spiking layer(s) {missing}")
    total = None
    for name, c in counts.items():
        c = np.asarray(c, dtype=np.float64)
        deg = np.asarray(out_degree[name], dtype=np.float64)
        if c.ndim != 2 or deg.shape != (c.shape[1],):
            raise BioconvError(f"synops: layer {name!r} has counts of shape {c.shape} and out-degrees of shape "
                               f"{deg.shape}; they must be (samples, n) and (n,)")
        events = c @ deg
        total = events if total is None else total + events
    return np.zeros(0) if total is None else total


def neuron_updates(n_neurons: int, steps: int) -> int:
    """NeuronOPs of one presentation (seed 004 eq. 22): every simulated (non-input) neuron is updated
    once per time step of the presentation, ``n_neurons x steps``. For TTFS the steps are the model's
    ``L`` windows times the steps per window (Table IV: 1,200 neurons x 6 x 50 = 360,000)."""
    if int(n_neurons) != n_neurons or int(steps) != steps or n_neurons < 0 or steps < 0:
        raise BioconvError(f"neuron_updates: n_neurons and steps must be non-negative integers, got {n_neurons!r}, "
                           f"{steps!r}")
    return int(n_neurons) * int(steps)


def energy_proxy(synaptic_ops, neuron_ops, neuron_weight: float = 1.0):
    """Seed 004 eq. 22: ``P = SynOPs + NeuronOPs``. ``neuron_weight`` scales NeuronOPs: 1 for ReL-PSP,
    whose update is one addition like a synaptic operation (seed 004 sec. IV-C); about 10 for a
    multi-bit leaky update on Loihi, by the paper's account."""
    return synaptic_ops + neuron_weight * neuron_ops


def layer_correlation(decoded: dict, targets: dict) -> dict:
    """Per layer, the Pearson correlation of ``decoded`` activations (e.g. from spike times) with the
    ANN's ``targets`` (same shapes), over the entries where the decoded value is finite (NaN: a
    neuron that produced none, such as one that never fired). NaN where fewer than two such entries
    are left or either side is constant there. Layers in ``decoded`` but not in ``targets`` are
    refused by name."""
    missing = sorted(set(decoded) - set(targets))
    if missing:
        raise BioconvError(f"layer_correlation: no ANN targets for layer(s) {missing}")
    out = {}
    for name, a in decoded.items():
        a, t = np.asarray(a, dtype=np.float64).ravel(), np.asarray(targets[name], dtype=np.float64).ravel()
        if a.shape != t.shape:
            raise BioconvError(f"layer_correlation: layer {name!r} has {a.size} decoded values and {t.size} targets")
        ok = np.isfinite(a)
        a, t = a[ok], t[ok]
        out[name] = float(np.corrcoef(a, t)[0, 1]) if len(a) > 1 and a.std() > 0 and t.std() > 0 else float("nan")
    return out


def accuracy_vs_steps(snn, x, y, steps, **evaluate_args) -> list[dict]:
    """Accuracy, agreement and undecided fraction of ``snn.evaluate(x, y, steps=s, **evaluate_args)``
    for each ``s`` in ``steps`` (the scheme's coding steps: per window for TTFS, T for CSS), one row
    per value, in order; with the evaluation's ``dt`` (s), wall time and, where the scheme reports
    them, its mean decision time and energy proxy."""
    rows = []
    for s in steps:
        res = snn.evaluate(x, y, steps=int(s), **evaluate_args)
        dtime = getattr(res, "decision_time", None)
        rows.append(dict(steps=int(s), dt_s=res.dt, accuracy=res.accuracy, ann_accuracy=res.ann_accuracy,
                         agreement=res.agreement, undecided_fraction=res.undecided_fraction,
                         mean_decision_time_s=float(np.nanmean(dtime)) if dtime is not None and np.isfinite(dtime).any()
                         else float("nan"),
                         energy_proxy=getattr(res, "energy_proxy", None), wall_s=res.wall_s))
    return rows


def window_fractions(times: dict, windows: dict, T_w: float) -> dict:
    """Where each layer's spikes fall relative to its window ``[w T_w, (w + 1) T_w]`` (model time, s):
    ``{layer: {"before", "inside", "after", "silent"}}``, fractions of the layer's neurons x samples.
    ``times``: ``{layer: (N, size)}`` first-spike times, NaN for no spike; ``windows``: ``{layer: w}``.
    The window's end is inside: the dynamic threshold forces the spikes of a = 0 there (seed 004
    eq. 12). A small tolerance (1e-9 T_w) absorbs the rounding of grid times."""
    out = {}
    eps = 1e-9 * T_w
    for name, t in times.items():
        t = np.asarray(t, dtype=np.float64).ravel()
        lo, hi = windows[name] * T_w, (windows[name] + 1) * T_w
        fired = np.isfinite(t)
        n = max(len(t), 1)
        out[name] = dict(before=float(np.sum(fired & (t < lo - eps)) / n),
                         inside=float(np.sum(fired & (t >= lo - eps) & (t <= hi + eps)) / n),
                         after=float(np.sum(fired & (t > hi + eps)) / n),
                         silent=float(np.sum(~fired) / n))
    return out


def spike_time_histogram(times: dict, bins) -> dict:
    """``{layer: counts}``: histogram of each layer's finite spike times over the bin edges ``bins``."""
    return {name: np.histogram(np.asarray(t, dtype=np.float64)[np.isfinite(t)], bins=bins)[0]
            for name, t in times.items()}


def plot_spike_times(times: dict, path, *, T_w: float, windows: dict | None = None, bins_per_window: int = 25,
                     title: str = "", unit: float = 1e-3, unit_name: str = "ms"):
    """Histogram of the spike times of each layer (seed 004 Fig. 7), written to ``path`` (PNG).
    ``times``: ``{layer: (N, size)}`` model spike times (s), NaN for no spike; ``windows``:
    ``{layer: w}`` shades each layer's window ``[w T_w, (w + 1) T_w]``. Returns the histogram
    (`spike_time_histogram`) and the bin edges (s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = [np.asarray(t, dtype=np.float64)[np.isfinite(t)] for t in times.values()]
    t_max = max([float(f.max()) for f in finite if f.size] + [T_w * (max(windows.values()) + 1) if windows else T_w])
    n_bins = int(np.ceil(t_max / T_w - 1e-9)) * bins_per_window
    bins = np.linspace(0.0, n_bins * T_w / bins_per_window, n_bins + 1)
    hist = spike_time_histogram(times, bins)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (name, h) in enumerate(hist.items()):
        c = colours[k % len(colours)]
        ax.stairs(h, bins / unit, label=str(name), color=c)
        if windows and name in windows:
            ax.axvspan(windows[name] * T_w / unit, (windows[name] + 1) * T_w / unit, color=c, alpha=0.08)
    ax.set_yscale("symlog", linthresh=1)
    ax.set_xlabel(f"spike time ({unit_name})")
    ax.set_ylabel("spikes")
    ax.set_title(title or "spike-time distribution per layer (shaded: the layer's window)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(Path(path), dpi=110)
    plt.close(fig)
    return hist, bins


__all__ = ["UNDECIDED", "accuracy_vs_steps", "decision_time", "decisions", "energy_proxy", "layer_correlation",
           "neuron_updates", "plot_spike_times", "spike_time_histogram", "spikes_per_neuron", "synops",
           "window_fractions"]
