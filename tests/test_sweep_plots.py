"""Sweep figures: line plots and heatmaps over one or two axes, the analytic prediction overlaid."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from brian2 import pF  # noqa: E402

from bioconv.sweep import SweepSpecError, plots  # noqa: E402


def _rows():
    cm, i = np.meshgrid([100e-12, 200e-12], [3e-10, 5e-10, 1e-9])
    df = pd.DataFrame({"Cm": cm.ravel(), "I_bias": i.ravel(), "status": "ok"})
    df["analytic_rate_Hz"] = df.I_bias / df.Cm * 1e-2
    df["isi_rate_Hz"] = df.analytic_rate_Hz * 1.01
    df.attrs["units"] = {"Cm": "farad", "I_bias": "amp"}
    return df


def test_line_plot_one_line_per_hue_value_with_the_analytic_prediction_dashed():
    ax = plots.line(_rows(), "I_bias", "isi_rate_Hz", hue="Cm")
    assert ax.get_xlabel() == "I_bias (nA)"  # shown in the best unit
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(dashed) == 2
    assert np.allclose(dashed[0].get_xdata(), [0.3, 0.5, 1.0])
    assert np.allclose(dashed[0].get_ydata(), _rows().query("Cm == 1e-10").analytic_rate_Hz)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "Cm (pF) = 100" in labels and "analytic" in labels
    plt.close("all")


def test_line_plot_selects_rows_and_names_missing_columns():
    ax = plots.line(_rows(), "I_bias", "isi_rate_Hz", where={"Cm": 200 * pF})
    solid = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
    assert np.allclose(solid[0].get_ydata(), _rows().query("Cm == 2e-10").isi_rate_Hz)
    with pytest.raises(SweepSpecError, match=r"no column 'gl'"):
        plots.line(_rows(), "gl", "isi_rate_Hz")
    plt.close("all")


def test_heatmap_shows_the_deviation_from_the_analytic_prediction():
    ax = plots.heatmap(_rows(), "Cm", "I_bias", "isi_rate_Hz")
    data = ax.get_images()[0].get_array()
    assert data.shape == (3, 2) and np.allclose(data, 0.01)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["100", "200"]
    ax = plots.heatmap(_rows(), "Cm", "I_bias", "isi_rate_Hz", relative_to=None)
    assert np.allclose(ax.get_images()[0].get_array()[0], _rows().query("I_bias == 3e-10").isi_rate_Hz)
    plt.close("all")
