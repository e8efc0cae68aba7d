"""Study: LC-TTFS conversion (seed 004) on the MNIST subset's held-out digits.

Parts (each writes its CSV as soon as it is done, so an interrupted study keeps what it finished):
1. ``classification``: the constrained zoo networks (`zoo.mnist_mlp_ttfs`, `zoo.mnist_convnet_ttfs`)
   converted with ``coding="ttfs"``: accuracy, agreement, the temporal-code metrics of
   `bioconv.coding.metrics` (decision time, spikes per neuron, SynOPs, energy proxy), per-layer
   correlation of the spike-time activations with the ANN's, accuracy vs time within the run;
2. ``vs_steps``: accuracy and agreement vs steps per window;
3. ``windows``: where the spikes fall relative to their layer's window, with seed 004's dynamic
   threshold and with a fixed one (Fig. 7), and the spike-time distributions as figures;
4. ``autoencoder``: seed 004 Table IV, `zoo.mnist_autoencoder_ttfs`: ANN vs SNN PSNR and SSIM
   (`bioconv.image_quality`) and the energy proxy counted from the simulated spikes;
5. ``ablations``: seed 004 Table III on the MLP and the ConvNet (`ablation_row`, shared with
   bench/ttfs_ablations.py). Rows the config does not run are read from the committed bench table
   (bench/results/ttfs_ablations.csv) and marked as such.

The sigmoid of the autoencoder: the SNN's output layer is read from its membrane at t = L T_w,
which is the output layer's pre-activation (the logit, in units of v_th, with the output bias as
its initial potential); the sigmoid is applied to it in decoding (`bioconv.ttfs_train.reconstruct`),
exactly as the ANN applies it to its last linear layer. No spiking neuron computes it.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from brian2 import ms

from .. import data, image_quality, ttfs, zoo
from .. import graph as G
from ..coding import metrics
from ..coding.ttfs import energy
from ..converter import convert

ROOT = Path(__file__).resolve().parents[2]
#: The committed ablation table (bench/ttfs_ablations.py writes it).
ABLATION_TABLE = ROOT / "bench" / "results" / "ttfs_ablations.csv"

NETWORKS = {"mlp": "mnist_mlp_ttfs", "convnet": "mnist_convnet_ttfs"}

#: Seed 004 Table III: row -> (training switches or None for the cached baseline network,
#: ReLU instead of ReLU1, dynamic threshold). Each row changes one thing against the baseline.
ABLATIONS = {
    "baseline": (None, False, True),
    "without dynamic threshold": (None, False, False),
    "without hard constraint": (dict(hard=False), False, True),
    "without soft and hard constraints": (dict(hard=False, soft=False), False, True),
    "ReLU instead of ReLU1": (dict(), True, True),
    "without pre-activation normalization": (dict(preactivation=False), False, True),
}
#: Seed 004 Table III (VGG-11, CIFAR-10): ANN and SNN accuracy (%) of each row, for the summary.
TABLE_III = {
    "baseline": (91.30, 91.25), "without dynamic threshold": (91.30, 77.82),
    "without hard constraint": (91.57, 86.95), "without soft and hard constraints": (92.10, 29.18),
    "ReLU instead of ReLU1": (90.87, 64.44), "without pre-activation normalization": (89.60, 89.67),
}
#: The zoo's training recipe for the constrained networks (the ablations retrain with it).
RECIPE = dict(epochs=30, lr=1e-3, weight_decay=1e-4)


def _relu_variant(network: str):
    """The network with ReLU instead of ReLU1, otherwise the constrained architecture."""
    from ..optional import require_torch
    nn = require_torch("bioconv.study.ttfs").nn
    if network == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 256, bias=False), nn.ReLU(), nn.Dropout(0.2),
                             nn.Linear(256, 128, bias=False), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 10))
    return zoo.convnet()  # seed 003's ConvNet: no biases, ReLU


def ablation_model(network: str, row: str, seed: int = 0):
    """The torch model of ablation ``row`` (a key of `ABLATIONS`) for ``network`` and its training
    seconds: the cached zoo network for the rows that leave training alone, else a network trained
    here with `RECIPE` and the row's switches."""
    from ..ttfs_train import train
    if network not in NETWORKS:
        raise ValueError(f"ablation: network {network!r} is none of {sorted(NETWORKS)}")
    if row not in ABLATIONS:
        raise ValueError(f"ablation: row {row!r} is none of {list(ABLATIONS)}")
    switches, relu, _ = ABLATIONS[row]
    if switches is None:
        return getattr(zoo, NETWORKS[network])(), zoo.record(NETWORKS[network]).get("train_seconds")
    model = _relu_variant(network) if relu else (zoo.mlp_ttfs() if network == "mlp" else zoo.convnet_ttfs())
    rec = train(model, data.mnist_subset(), seed=seed, **RECIPE, **switches)
    return model, rec["train_seconds"]


def ablation_row(network: str, row: str, x, y, *, steps: int = 50, batch: int = 50, seed: int = 0,
                 progress: bool = False) -> dict:
    """One row of seed 004 Table III: the row's network converted with ``strict=False`` (the
    warnings are recorded by name), simulated on ``x`` at ``steps`` per window with or without the
    dynamic threshold, against its own ANN."""
    model, train_s = ablation_model(network, row, seed)
    _, _, dynamic = ABLATIONS[row]
    graph = G.from_torch(model, x.shape[1:])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        snn = convert(graph, coding="ttfs", strict=False, dynamic_threshold=dynamic)
    t0 = time.perf_counter()
    out = snn.coding.simulate(snn, x, steps=steps, batch=batch, progress=progress)
    res = snn.coding.result(snn, x, y, out)
    sim_s = time.perf_counter() - t0
    acts = graph.forward(np.asarray(x, dtype=np.float64))
    above = {p.name: float(np.mean(acts[p.name] > 1)) for p in snn.mapped.layers if p.kind == "hidden"}
    hidden = [p for p in snn.mapped.layers if p.kind == "hidden"]
    return dict(network=network, row=row, seed=seed, steps=steps, n_test=len(x), ann=res.ann_accuracy,
                snn=res.accuracy, agreement=res.agreement, loss=res.ann_accuracy - res.accuracy,
                worst_weight_sum_deviation=max(p.weight_sum_deviation for p in hidden),
                silent_fraction=max(float(np.mean(out.spikes[p.name] == 0)) for p in hidden),
                ann_above_1_fraction=max(above.values()),
                min_layer_correlation=float(np.nanmin(list(res.layer_correlation.values()))),
                warnings=" ".join(sorted({type(w.message).__name__ for w in caught})),
                train_s=train_s, simulate_s=round(sim_s, 1))


def batch_of(cfg: dict, network: str) -> int:
    """Copies simulated at once for ``network``: ``convnet_batch`` for the ConvNet (1.5 million
    synapses a copy), else ``batch``."""
    return int(cfg.get("convnet_batch", cfg.get("batch", 50))) if network == "convnet" else int(cfg.get("batch", 50))


def _write(tables: dict, out: Path):
    for name, rows in tables.items():
        if rows:
            pd.DataFrame(rows).to_csv(out / f"{name}.csv", index=False)


def run(cfg: dict, out: Path, progress=None) -> dict[str, pd.DataFrame]:
    out.mkdir(parents=True, exist_ok=True)
    split = data.mnist_subset()
    steps = int(cfg["steps"])
    show = progress is not None
    tables = {k: [] for k in ("classification", "layers", "vs_time", "vs_steps", "windows", "autoencoder",
                              "ablations")}
    parts = [("classification", n) for n in cfg["networks"]] + [("autoencoder", None)] + \
        [("ablation", (n, r)) for n in cfg["ablations"].get("networks", []) for r in cfg["ablations"].get("rows", [])]
    bar = progress(parts, desc="ttfs study", unit="part") if progress else parts
    for kind, what in bar:
        if kind == "classification":
            _classification(what, cfg, split, steps, batch_of(cfg, what), tables, out, show)
        elif kind == "autoencoder":
            _autoencoder(cfg["autoencoder"], split, steps, int(cfg.get("batch", 50)), tables, out, show)
        else:
            n = int(cfg["ablations"]["n_test"])
            tables["ablations"].append(dict(ablation_row(*what, split.x_test[:n], split.y_test[:n], steps=steps,
                                                         batch=batch_of(cfg, what[0]), progress=show),
                                            source="this run"))
        _write(tables, out)
    _committed_ablations(tables, cfg)
    _write(tables, out)
    import json
    (out / "zoo.json").write_text(json.dumps({n: zoo.record(n) for n in [*NETWORKS.values(), "mnist_autoencoder_ttfs"]},
                                             indent=2))
    return {name: pd.DataFrame(rows) for name, rows in tables.items()}


def _classification(network, cfg, split, steps, batch, tables, out, show):
    ann = getattr(zoo, NETWORKS[network])()
    n = int(cfg["n_test"])
    x, y = split.x_test[:n], split.y_test[:n]
    T_w = 1 * ms
    for dynamic in (True, False):
        snn = convert(ann, coding="ttfs", input_shape=x.shape[1:], T_w=T_w, dynamic_threshold=dynamic)
        if not dynamic:
            n_fixed = int(cfg["n_fixed_threshold"])
            x, y = x[:n_fixed], y[:n_fixed]
        t0 = time.perf_counter()
        out_ = snn.coding.simulate(snn, x, steps=steps, batch=batch, progress=show)
        res = snn.coding.result(snn, x, y, out_)
        wall = time.perf_counter() - t0
        net = snn.mapped
        label = dict(network=network, threshold="dynamic" if dynamic else "fixed", steps=steps, n_test=len(x))
        windows = {p.name: p.window for p in net.layers if p.name in out_.times}
        hidden = [p.name for p in net.layers if p.kind in ("hidden", "maxpool")]
        frac = metrics.window_fractions({k: out_.times[k] for k in hidden}, windows, float(T_w))
        for name in hidden:
            tables["windows"].append(dict(label, layer=name, window=windows[name], **frac[name]))
        metrics.plot_spike_times({k: out_.times[k] for k in out_.times}, out / f"spike_times_{network}_"
                                 f"{label['threshold']}.png", T_w=float(T_w), windows=windows,
                                 title=f"{network}: spike times, {label['threshold']} threshold (shaded: each "
                                       f"layer's window)")
        dtime = res.decision_time
        tables["classification"].append(dict(
            label, ann_accuracy=res.ann_accuracy, snn_accuracy=res.accuracy, agreement=res.agreement,
            undecided=res.undecided_fraction,
            # the output bias alone decides until the last hidden layer fires: a digit whose final
            # class is the bias's argmax is decided from t = 0 (decision time 0)
            decided_from_t0=float(np.mean(dtime == 0)),
            median_decision_time_windows=float(np.nanmedian(dtime)) / float(T_w) if np.isfinite(dtime).any() else np.nan,
            max_decision_time_windows=float(np.nanmax(dtime)) / float(T_w) if np.isfinite(dtime).any() else np.nan,
            readout_windows=net.n_windows, spikes_per_neuron=res.spikes_per_neuron["all"],
            silent_fraction=float(np.mean(np.concatenate([out_.spikes[k].ravel() for k in hidden]) == 0)),
            synops_per_sample=res.settings["synops_per_sample"],
            neuron_ops_per_sample=res.settings["neuron_updates_per_sample"], energy_proxy=res.energy_proxy,
            min_layer_correlation=float(np.nanmin(list(res.layer_correlation.values()))), simulate_s=round(wall, 1)))
        targets = snn.coding.targets(snn, np.asarray(x, dtype=np.float64))
        for name, c in res.layer_correlation.items():
            a, t = out_.activations[name], targets[name]
            ok = np.isfinite(a)
            tables["layers"].append(dict(label, layer=name, correlation=c,
                                         max_abs_error=float(np.abs(a - t)[ok].max()) if ok.any() else np.nan,
                                         mean_error=float((a - t)[ok].mean()) if ok.any() else np.nan,
                                         spikes_per_neuron=res.spikes_per_neuron[name]))
        for t, acc, agr in zip(res.times, res.accuracy_vs_time, res.agreement_vs_time):
            tables["vs_time"].append(dict(label, t_windows=t / float(T_w), accuracy=acc, agreement=agr))
        if dynamic:
            np.savez_compressed(out / f"scatter_{network}.npz", **{f"{p}__ann": a for p, (a, b) in res.scatter.items()},
                                **{f"{p}__snn": b for p, (a, b) in res.scatter.items()})
            m = int(cfg["n_vs_steps"])
            for row in metrics.accuracy_vs_steps(snn, split.x_test[:m], split.y_test[:m], cfg["vs_steps"],
                                                 device="runtime", batch=batch, progress=show):
                tables["vs_steps"].append(dict(network=network, n_test=m, **row))


def _autoencoder(cfg, split, steps, batch, tables, out, show):
    """Table IV: ANN vs SNN reconstructions for each of ``cfg["variants"]`` (steps per window and the
    half-step threshold correction; default one variant, ``steps`` and the paper's rule)."""
    from ..ttfs_train import reconstruct
    model = zoo.mnist_autoencoder_ttfs()
    n = int(cfg["n_test"])
    x = split.x_test[:n].astype(np.float64)
    graph = G.from_torch(model, x.shape[1:])
    net = ttfs.map_network(graph)
    acts = graph.forward(x)
    ann_rec = reconstruct(acts[graph.output]).reshape(x.shape)
    hidden = [p.name for p in net.layers if p.kind == "hidden"]
    rec = zoo.record("mnist_autoencoder_ttfs")
    for k, v in enumerate(cfg.get("variants", [dict(steps=steps, half_step=False)])):
        v_steps, half = int(v.get("steps", steps)), bool(v.get("half_step", False))
        t0 = time.perf_counter()
        sim = ttfs.simulate(net, x, steps=v_steps, batch=int(cfg.get("batch", batch)), half_step=half, progress=show)
        wall = time.perf_counter() - t0
        snn_rec = reconstruct(sim.potential).reshape(x.shape)
        ops = energy(net, sim.spikes, v_steps)
        corr = metrics.layer_correlation({k_: sim.activations[k_] for k_ in hidden},
                                         {k_: acts[k_].reshape(n, -1) for k_ in hidden})
        errors = {k_: sim.activations[k_] - acts[k_].reshape(n, -1) for k_ in hidden}
        tables["autoencoder"].append(dict(
            n_test=n, steps=v_steps, half_step=half,
            ann_psnr=image_quality.mean_psnr(x, ann_rec), snn_psnr=image_quality.mean_psnr(x, snn_rec),
            ann_ssim=image_quality.mean_ssim(x, ann_rec), snn_ssim=image_quality.mean_ssim(x, snn_rec),
            snn_vs_ann_psnr=image_quality.mean_psnr(ann_rec, snn_rec),
            mean_output_error=float((sim.potential - acts[graph.output]).mean()),
            max_abs_output_error=float(np.abs(sim.potential - acts[graph.output]).max()),
            hidden_mean_errors=" ".join(f"{float(e.mean()):+.4f}" for e in errors.values()),
            spikes_per_neuron=metrics.spikes_per_neuron({k_: sim.spikes[k_] for k_ in hidden})["all"],
            synops_per_sample=float(ops["synops"].mean()), synops_min=float(ops["synops"].min()),
            synops_max=float(ops["synops"].max()), neuron_ops_per_sample=ops["neuron_ops"],
            energy_proxy=float(ops["energy_proxy"].mean()),
            min_layer_correlation=float(np.nanmin(list(corr.values()))),
            worst_weight_sum_deviation=max(net.layer(k_).weight_sum_deviation for k_ in hidden),
            train_s=rec.get("train_seconds"), simulate_s=round(wall, 1)))
        if k == 0:
            _plot_reconstructions(x[:int(cfg.get("n_images", 8))], ann_rec, snn_rec,
                                  out / "autoencoder_reconstructions.png")
            metrics.plot_spike_times({k_: sim.times[k_] for k_ in sim.times}, out / "spike_times_autoencoder.png",
                                     T_w=float(net.T_w), windows={p.name: p.window for p in net.layers
                                                                  if p.name in sim.times},
                                     title="autoencoder: spike times (shaded: each layer's window)")


def _plot_reconstructions(x, ann_rec, snn_rec, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    k = len(x)
    fig, axes = plt.subplots(3, k, figsize=(1.1 * k, 3.6))
    for j in range(k):
        for i, (img, name) in enumerate(((x, "input"), (ann_rec, "ANN"), (snn_rec, "SNN"))):
            ax = axes[i, j]
            ax.imshow(img[j].reshape(28, 28), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.suptitle("autoencoder (seed 004 Table IV): inputs, ANN and TTFS SNN reconstructions", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _committed_ablations(tables, cfg):
    """The committed ablation rows (bench/results/ttfs_ablations.csv) that this run did not produce,
    marked with their source, so that the summary shows the whole of Table III."""
    if not ABLATION_TABLE.exists():
        return
    done = {(r["network"], r["row"]) for r in tables["ablations"]}
    committed = pd.read_csv(ABLATION_TABLE).fillna({"warnings": ""})  # an empty cell reads back as NaN
    for r in committed.to_dict("records"):
        if (r["network"], r["row"]) not in done:
            tables["ablations"].append(dict(r, source="committed (bench/results/ttfs_ablations.csv)"))
