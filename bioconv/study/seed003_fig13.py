"""Study seed003_fig13: seed 003 Fig. 13(b, c) as a network-level sweep (`bioconv.sweep`).

Fig. 13 compares the linear LIF network (linear reset) with the LIF network (reset to zero) on MNIST:
(b) accuracy against the range of the input coding frequency [0, k], (c) accuracy against the
membrane conductance gl. Here: the converted MNIST ConvNet (seed 003 Table V) on the first ``n_test``
held-out digits, regular input trains (eq. 15), a window of ``T_s`` per digit, over a grid of
rate_max (the rate that codes activation 1: the input frequency range [0, rate_max], every layer's
rates scaling with it) x gl (a leak added to every membrane, towards the reset potential) x reset.
Both are sweepable parameters: each (reset, dt) shape compiles once. A few points at a finer dt check
what the grid's step costs.

Theory: at a fixed mapping (charges q = W v_th Cm, EL = v_reset = 0) an added leak gl acts as a
negative bias on every unit. Table VII (`analysis.bias_from_leak_small`, FORMULAS sec. 3) gives the
onset form b = -gl v_th as a current, the leak current at threshold: in the normalized network's
units b / (rate_max v_th Cm) = -gl / (Cm rate_max). Far above the onset the rate under a current I is
1 / (tau_m ln(I / (I - gl v_th))) ~ (I - gl v_th / 2) / (Cm v_th), a bias of half that (the leak
current at the mean potential v_th / 2). A unit's bias lies between the two: the "table7" and
"mean_potential" rules bracket it. The SNN's accuracy should then depend on gl and rate_max through
leak = gl / (Cm rate_max) = 1 / (tau_m rate_max) alone, and follow the accuracy of the ANN given that
bias (`leak_as_bias`), which says where the frontier lies. It says nothing of the loss at low rates
and gl = 0 (too few spikes in the window), which the sweep shows apart.
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
    # the study owns its store: a config that grew keeps the points it already has (same config
    # hashes), and the tables below take this spec's points only
    done = len(sweep.store.finished(store)) if store.exists() else 0
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    df = sweep.run(s, store, workers=int(cfg.get("workers", 1)), progress=True, allow_other_spec=True)
    wall = time.perf_counter() - t0
    df = df[df.config_hash.isin(s.hashes)].reset_index(drop=True)
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
    theory = leak_theory(cfg, df)
    if theory is not None:
        theory.to_csv(out / "leak_as_bias.csv", index=False)
    return {"points": points, "timings": timing, "rows": df, "theory": theory}


#: (rule, fraction of Table VII's onset bias -gl v_th): see the module's docstring
LEAK_RULES = (("table7", 1.0), ("mean_potential", 0.5))


def leak_theory(cfg: dict, df: pd.DataFrame, load=None) -> pd.DataFrame | None:
    """The ANN's accuracy on the sweep's digits with the leak as a bias on every membrane population,
    over leak = gl / (Cm rate_max) (the points' values and a fine grid), by each rule of `LEAK_RULES`;
    None where the network's populations are not each fed by a conv2d or linear layer (the bias has
    nowhere to go). ``load``: the sweep's network loader (default `sweep.network.load_network`), the
    structure's conversion settings as keywords, returning (snn, x, y)."""
    from brian2 import Hz, farad, mV, siemens

    from .. import analysis
    if load is None:
        from ..sweep.network import load_network as load
    row = df.iloc[0]
    files = {k: row[k] for k in ("data", "network_sha256", "data_sha256") if k in row and isinstance(row[k], str)}
    snn, x, y = load(network=row["network"], n_test=int(row["n_test"]), n_calibration=int(row["n_calibration"]),
                     normalization=row["normalization"], bias=row["bias"], reset=row["reset"],
                     synapse=row["synapse"], **files)
    cm = _uniform_cm(snn.mapped, df)
    leaks = np.unique(np.r_[0.0, np.geomspace(1e-3, 3.0, 31), (df.gl / (cm * df.rate_max)).to_numpy()])
    v_th, rate_max = 20 * mV, 1 * Hz  # any: the normalized bias depends on gl / (Cm rate_max) alone
    rows = []
    for rule, fraction in LEAK_RULES:
        for leak in leaks:
            gl = leak * cm * float(rate_max) * siemens
            b = fraction * float(analysis.bias_from_leak_small(gl, v_th) / (rate_max * v_th * cm * farad))
            acc = leak_as_bias(snn, x, y, b)
            if acc is None:
                return None
            rows.append({"rule": rule, "leak": leak, "bias_normalized": b, "ann_accuracy_with_bias": acc, "Cm_F": cm})
    return pd.DataFrame(rows)


def _uniform_cm(mapped, df: pd.DataFrame) -> float:
    """The one Cm (F) of every membrane, which leak = gl / (Cm rate_max) needs; refused where the
    mapping's populations differ or the sweep moves Cm."""
    from ..simulate.sweepable import membranes
    if "Cm" in df and df["Cm"].notna().any():
        raise ValueError("seed003_fig13.leak_theory: the sweep moves Cm; the leak-as-bias curve holds the "
                         "mapping's Cm fixed")
    values = {float(v) for p in membranes(mapped) for v in np.ravel(np.asarray(p.params["Cm"], dtype=float))}
    if len(values) != 1:
        raise ValueError(f"seed003_fig13.leak_theory: the membranes have {len(values)} different Cm values "
                         f"({sorted(values)[:4]} F ...); leak = gl / (Cm rate_max) needs one")
    return values.pop()


def leak_as_bias(snn, x, y, bias: float) -> float | None:
    """Accuracy of ``snn``'s ANN on (x, y) when every membrane population's pre-activation gets the
    normalized bias ``bias`` (times the population's scale in the ANN's own units); a decision needs
    a positive output (a silent output is wrong, as in the SNN). None if a population's input is not
    a conv2d or linear layer."""
    from .. import graph as G
    g = snn.graph
    nodes = {n.name: n for n in g.nodes}
    extra = {}
    for p in snn.populations:
        if p.kind not in ("relu", "output"):
            continue
        node = nodes[p.name]
        pre = node if node.op in ("linear", "conv2d") else nodes[node.inputs[0]] if node.op == "relu" else None
        if pre is None or pre.op not in ("linear", "conv2d"):
            return None
        extra[pre.name] = bias * snn.scales.values[p.name]
    new = []
    for n in g.nodes:
        params = dict(n.params)
        if n.name in extra:
            out = n.params["weight"].shape[0]
            params["bias"] = np.asarray(n.params.get("bias", np.zeros(out)), dtype=float) + extra[n.name]
        new.append(G.Node(n.name, n.op, list(n.inputs), params))
    out = G.from_nodes(new, g.input_shape, g.output).forward(np.asarray(x, dtype=np.float64))[g.output]
    out = out.reshape(len(x), -1)
    winner = out.argmax(1)
    decided = (out.max(1) > 0) & ((out == out.max(1, keepdims=True)).sum(1) == 1)
    return float(np.mean(decided & (winner == np.asarray(y))))


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
    _ticks_at(b.xaxis, sorted(grid.rate_max.unique()), 1.0)
    b.set_title(f"Fig. 13(b): accuracy vs input range [0, rate_max], gl = 0")
    plots.line(grid, "gl", "accuracy", hue="reset", where={"rate_max": cfg["paper_rate_max_Hz"] * Hz}, ax=c)
    # gl spans decades and starts at 0: linear up to the smallest nonzero value, logarithmic above
    gls = sorted(grid.gl.unique())
    unit = plots._scale(grid, "gl")[0]
    if len(gls) > 1:
        c.set_xscale("symlog", linthresh=gls[1] / unit, linscale=0.5)
    _ticks_at(c.xaxis, gls, unit)
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

    theory = tables.get("theory")
    if theory is not None:
        cm = _cm(tables)
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for rule, style in (("mean_potential", "-"), ("table7", "--")):
            t = theory[theory.rule == rule]
            ax.plot(t.leak, t.ann_accuracy_with_bias, style, color="k", lw=1,
                    label=f"ANN + leak as bias ({'v_th / 2' if rule == 'mean_potential' else 'Table VII, v_th'})")
        rates = sorted(grid.rate_max.unique())
        cmap = plt.get_cmap("viridis")
        for reset, marker in zip(RESETS, ("o", "x")):
            for k, r in enumerate(rates):
                part = grid[(grid["reset"] == reset) & np.isclose(grid.rate_max, r)]
                ax.plot(part.gl / (cm * r), part.accuracy, marker, mfc="none" if marker == "o" else None,
                        color=cmap(k / max(1, len(rates) - 1)), ms=6,
                        label=f"{LABEL[reset]}, {r:g} Hz" if reset == RESETS[0] or k == 0 else None)
        ax.axhline(ann, color="grey", lw=0.8, ls=":", label=f"ANN ({ann:.1%})")
        ax.set_xscale("symlog", linthresh=1e-3)
        ax.set_xlim(left=0)
        ax.set_xlabel("leak = gl / (Cm rate_max) = 1 / (tau_m rate_max)   (gl = 0 at the left edge)")
        ax.set_ylabel("accuracy")
        ax.set_title("every (rate_max, gl) point against the leak as a bias", fontsize=10)
        ax.legend(fontsize=6, ncol=2)
        fig.tight_layout()
        paths.append(out / "fig13_leak_as_bias.png")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    return paths


def _ticks_at(axis, values, unit: float):
    """Ticks at the grid's own values (SI / ``unit``), plainly labelled, no minor ticks: a log axis
    over a handful of values otherwise labels 2 x 10^0, 3 x 10^0, ... on top of each other."""
    from matplotlib.ticker import FixedLocator, NullLocator
    shown = [v / unit for v in values]
    axis.set_major_locator(FixedLocator(shown))
    axis.set_ticklabels([f"{v:g}" for v in shown])
    axis.set_minor_locator(NullLocator())


def _cm(tables) -> float:
    """The mapping's Cm (F) that the theory's leak = gl / (Cm rate_max) uses."""
    return float(tables["theory"].Cm_F.iloc[0])


def _md(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    from .rate_report import _md as md
    return md(df, floatfmt)


def _reset_comparison(grid: pd.DataFrame) -> list[str]:
    """Linear LIF minus LIF (reset to zero), in accuracy points, per (gl, rate_max): the seed's
    "7 % higher under the same parameters and weights"."""
    acc = grid.pivot_table(index=["gl_nS", "rate_max_Hz"], columns="reset", values="accuracy")
    if not set(RESETS) <= set(acc.columns):
        return []
    diff = (acc["linear"] - acc["value"]) * 100
    table = diff.unstack("rate_max_Hz")
    table.index = [f"{g:g}" for g in table.index]
    # points where at least one network decides above chance (10 classes): elsewhere both are silent
    live = diff[(acc.max(axis=1) > 0.1)]
    return ["## Linear LIF minus LIF (reset to zero)", "",
            "Accuracy points, rows gl (nS), columns rate_max (Hz):", "",
            _md(table.rename(columns=lambda r: f"{r:g} Hz").rename_axis("gl_nS").reset_index(), ".1f"), "",
            f"Over the {len(live)} points where either network is above chance: mean {live.mean():+.1f}, median "
            f"{live.median():+.1f}, range {live.min():+.1f} to {live.max():+.1f} points; the linear LIF is ahead at "
            f"{int((live > 0).sum())}, level at {int((live == 0).sum())}, behind at {int((live < 0).sum())}.", ""]


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
        table.index = [f"{g:g}" for g in table.index]  # 0.01 and 0.03 nS, not 0.0 at .1f
        out += [f"## {LABEL[reset]}", "",
                _md(table.rename(columns=lambda r: f"{r:g} Hz").rename_axis("gl_nS").reset_index(), ".1f"), ""]
    # the frontier: per gl, the lowest rate_max within 1 point of the ANN
    rows = []
    for (reset, gl), part in grid.groupby(["reset", "gl_nS"]):
        ok = part[part.accuracy >= ann - 0.01].rate_max_Hz
        rows.append({"reset": reset, "gl_nS": gl, "lowest rate_max within 1 pt of the ANN (Hz)":
                     float(ok.min()) if len(ok) else np.nan, "best accuracy": float(part.accuracy.max())})
    out += ["## Frontier", "", _md(pd.DataFrame(rows)), ""]
    out += _reset_comparison(grid)
    theory = tables.get("theory")
    if theory is not None:
        cm = _cm(tables)
        out += ["## The leak as a bias", "",
                f"leak = gl / (Cm rate_max) with the mapping's Cm = {cm * 1e12:g} pF. The ANN with every membrane "
                "population given the normalized bias -leak (table7: Table VII's onset form -gl v_th, "
                "`analysis.bias_from_leak_small`) or -leak / 2 (mean_potential: the LIF rate far above the onset, "
                "(I - gl v_th / 2) / (Cm v_th)), against the SNN at the same leak:", ""]
        rows = []
        # rows where the SNN or a rule is above 0 (the rest: every one silent)
        for _, p in grid[grid.gl_nS > 0].iterrows():
            leak = p.gl_nS * 1e-9 / (cm * p.rate_max_Hz)
            rec = {"reset": p["reset"], "rate_max_Hz": p.rate_max_Hz, "gl_nS": p.gl_nS, "leak": leak,
                   "snn": p.accuracy}
            for rule in ("mean_potential", "table7"):
                t = theory[theory.rule == rule]
                rec[f"ann+bias ({rule})"] = float(t.ann_accuracy_with_bias.iloc[np.argmin(np.abs(t.leak - leak))])
            if max(v for k, v in rec.items() if k == "snn" or k.startswith("ann+bias")) > 0:
                rows.append(rec)
        out += [_md(pd.DataFrame(rows).sort_values(["reset", "leak"]), ".3g"), "",
                "Rows where the SNN and both rules give 0 are left out (`leak_as_bias.csv`, `points.csv`).", ""]
        # where the theory puts the frontier: the smallest leak at which the biased ANN loses a point
        for rule in ("mean_potential", "table7"):
            t = theory[(theory.rule == rule) & (theory.ann_accuracy_with_bias < ann - 0.01)]
            if len(t):
                leak = float(t.leak.min())
                out += [f"- {rule}: the biased ANN loses 1 point from leak = {leak:.3g}, i.e. gl = "
                        + ", ".join(f"{leak * cm * r * 1e9:.3g} nS at {r:g} Hz" for r in sorted(grid.rate_max_Hz.unique()))]
        out += [""]
    check = points[~np.isclose(points.dt_ms, cfg["dt_ms"])]
    if len(check):
        same = grid.merge(check, on=["reset", "rate_max_Hz", "gl_nS"], suffixes=("", "_fine"))
        out += ["## The grid's step", "", f"The same points at dt = {cfg['check_dt_ms']} ms:", "",
                _md(same[["reset", "rate_max_Hz", "gl_nS", "accuracy", "accuracy_fine", "agreement",
                          "agreement_fine"]]), ""]
    out += ["## Run", "", _md(timing), ""]
    rows = tables.get("rows")
    if rows is not None and {"started_at", "finished_at", "git_commit", "host"} <= set(rows.columns):
        # a resumed sweep reuses the store's rows: say when and from which code they were computed
        def utc(t):
            return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(float(t)))
        out += [f"The store's {len(rows)} rows were computed from {utc(rows.started_at.min())} to "
                f"{utc(rows.finished_at.max())} on {', '.join(sorted(set(rows.host)))}, bioconv commit(s) "
                f"{', '.join(sorted(set(rows.git_commit)))}.", ""]
    return "\n".join(out)
