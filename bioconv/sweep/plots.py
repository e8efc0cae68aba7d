"""Figures of a sweep's results (`bioconv.sweep.load`): a metric along one axis (one line per value of
a second parameter), or over two axes as a heatmap; the analytic prediction overlaid where the rows
carry one (the neuron level's ``analytic_rate_Hz``, `bioconv.analysis.lif_rate`).

Axes are shown in the best-fitting Brian2 unit (pF, nS, ms) from the store's units.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from brian2 import Quantity

from ..units import parse_unit
from .params import SweepSpecError

#: metric -> the column holding its analytic prediction
ANALYTIC = {"isi_rate_Hz": "analytic_rate_Hz", "count_rate_Hz": "analytic_rate_Hz"}


def _select(df: pd.DataFrame, where: dict | None) -> pd.DataFrame:
    df = df[df.status == "ok"] if "status" in df else df
    for name, value in (where or {}).items():
        if name not in df:
            raise SweepSpecError(f"sweep plot: no column {name!r} to select on; columns: {sorted(df.columns)}")
        v = float(np.asarray(value)) if isinstance(value, Quantity) else value
        df = df[np.isclose(df[name], v, rtol=1e-9, atol=0)] if isinstance(v, float) else df[df[name] == v]
    if df.empty:
        raise SweepSpecError(f"sweep plot: no successful rows with {where}")
    return df


def _scale(df: pd.DataFrame, name: str) -> tuple[float, str]:
    """(divisor, label) showing column ``name`` in its best Brian2 unit."""
    unit = df.attrs.get("units", {}).get(name)
    if not unit or unit == "1":
        return 1.0, name
    values = Quantity(df[name].to_numpy(dtype=float), dim=parse_unit(unit).dim)
    best = values.get_best_unit() if np.any(df[name].to_numpy() != 0) else parse_unit(unit)
    return float(best), f"{name} ({best})"


def _require(df, *names):
    for n in names:
        if n not in df:
            raise SweepSpecError(f"sweep plot: no column {n!r}; columns: {sorted(df.columns)}")


def line(df: pd.DataFrame, x: str, y: str, *, hue: str | None = None, where: dict | None = None, ax=None,
         analytic: str | None = "auto"):
    """``y`` against ``x``, one line per value of ``hue``, on the rows matching ``where`` (column ->
    value). Points that share x (and hue) are averaged, with their spread as error bars. The
    analytic prediction (``analytic``: a column; ``"auto"``: the one `ANALYTIC` names for ``y``) is
    drawn dashed. Returns the matplotlib Axes."""
    import matplotlib.pyplot as plt
    _require(df, x, y, *([hue] if hue else []))
    d = _select(df, where)
    analytic = ANALYTIC.get(y) if analytic == "auto" else analytic
    if analytic is not None:
        _require(d, analytic)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    sx, xlabel = _scale(d, x)
    groups = list(d.groupby(hue)) if hue else [(None, d)]
    sh, hue_label = _scale(d, hue) if hue else (1.0, None)
    for k, (key, part) in enumerate(groups):
        stats = part.groupby(x)[y].agg(["mean", "min", "max"])
        xs = stats.index.to_numpy(dtype=float) / sx
        label = None if hue is None else f"{hue_label} = {key / sh:.3g}" if isinstance(key, float) else f"{hue} = {key}"
        err = np.vstack([stats["mean"] - stats["min"], stats["max"] - stats["mean"]])
        drawn = ax.errorbar(xs, stats["mean"], yerr=err if np.any(err) else None, marker="o", ms=3, label=label)
        if analytic is not None:
            pred = part.groupby(x)[analytic].mean()
            ax.plot(xs, pred.to_numpy(), "--", color=drawn[0].get_color(), label="analytic" if k == 0 else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(y)
    if hue or analytic:
        ax.legend(fontsize=7)
    return ax


def heatmap(df: pd.DataFrame, x: str, y: str, value: str, *, where: dict | None = None, ax=None,
            relative_to: str | None = "auto"):
    """``value`` over the grid of ``x`` and ``y`` (mean over the other parameters on the rows matching
    ``where``). With an analytic prediction (``relative_to``: a column; ``"auto"``: `ANALYTIC`), the
    map shows the relative deviation value/prediction - 1 instead. Returns the matplotlib Axes."""
    import matplotlib.pyplot as plt
    _require(df, x, y, value)
    d = _select(df, where)
    relative_to = ANALYTIC.get(value) if relative_to == "auto" else relative_to
    shown, title = d[value], value
    if relative_to is not None:
        _require(d, relative_to)
        shown, title = d[value] / d[relative_to] - 1, f"{value} / {relative_to} - 1"
    table = d.assign(_v=shown).pivot_table(index=y, columns=x, values="_v", aggfunc="mean")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    sx, xlabel = _scale(d, x)
    sy, ylabel = _scale(d, y)
    im = ax.imshow(table.to_numpy(), origin="lower", aspect="auto",
                   cmap="RdBu_r" if relative_to is not None else "viridis",
                   **({} if relative_to is None else {"vmin": -np.nanmax(np.abs(table.to_numpy())),
                                                      "vmax": np.nanmax(np.abs(table.to_numpy()))}))
    ax.set_xticks(range(len(table.columns)), [f"{v / sx:.3g}" for v in table.columns])
    ax.set_yticks(range(len(table.index)), [f"{v / sy:.3g}" for v in table.index])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.figure.colorbar(im, ax=ax, label=title)
    return ax
