"""The ttfs study end to end on tiny stand-in networks (the zoo's would train on first use), its
autoencoder figures against the hand count, and the ablation-direction rule on a hand-built table."""
import numpy as np
import pandas as pd
import pytest

from bioconv import cli, ttfs
from bioconv.study import ttfs as study
from bioconv.study import ttfs_report

NO_TORCH = "torch is not installed: the study converts torch networks (the Python 3.12 lane runs without torch)"


def _projected(layers):
    """Hidden Linear layers projected onto weight sums of 1 (what constrained training leaves)."""
    import torch
    with torch.no_grad():
        for m in layers:
            m.weight.copy_(torch.from_numpy(ttfs.project_weight_sums(m.weight.numpy().astype(np.float64))))


def _tiny_mlp():
    import torch
    from bioconv.ttfs_train import ReLU1
    torch.manual_seed(0)
    nn = torch.nn
    a, b = nn.Linear(784, 12, bias=False), nn.Linear(12, 10)
    _projected([a])
    return nn.Sequential(nn.Flatten(), a, ReLU1(), b).eval()


def _tiny_autoencoder():
    import torch
    from bioconv.ttfs_train import ReLU1
    torch.manual_seed(1)
    nn = torch.nn
    a, b, c = nn.Linear(784, 8, bias=False), nn.Linear(8, 6, bias=False), nn.Linear(6, 784)
    _projected([a, b])
    return nn.Sequential(nn.Flatten(), a, ReLU1(), b, ReLU1(), c).eval()


def test_ttfs_study_writes_results_on_stand_in_networks(tmp_path, monkeypatch):
    pytest.importorskip("torch", reason=NO_TORCH)
    monkeypatch.setattr(study.zoo, "mnist_mlp_ttfs", _tiny_mlp)
    monkeypatch.setattr(study.zoo, "mnist_autoencoder_ttfs", _tiny_autoencoder)
    monkeypatch.setattr(study.zoo, "record", lambda name: {"stand_in": name})
    committed = tmp_path / "committed.csv"
    pd.DataFrame([dict(network="convnet", row="baseline", n_test=1000, steps=50, ann=0.98, snn=0.982),
                  dict(network="convnet", row="ReLU instead of ReLU1", n_test=1000, steps=50, ann=0.98, snn=0.90)]
                 ).to_csv(committed, index=False)
    monkeypatch.setattr(study, "ABLATION_TABLE", committed)
    config = tmp_path / "config.toml"
    config.write_text("""
[quick]
steps = 10
batch = 4
networks = ["mlp"]
n_test = 6
n_fixed_threshold = 4
vs_steps = [5]
n_vs_steps = 4

[quick.autoencoder]
n_test = 3
n_images = 2

[quick.ablations]
networks = []
rows = []
n_test = 1000
""")
    out = tmp_path / "out"
    assert cli.main(["study", "ttfs", "--config", str(config), "--out", str(out)]) == 0
    cl = pd.read_csv(out / "classification.csv")
    assert cl.threshold.tolist() == ["dynamic", "fixed"] and cl.n_test.tolist() == [6, 4]
    dyn = cl.iloc[0]
    # every hidden neuron fires once with the dynamic threshold: SynOPs = 784 x 12 input synapses (the
    # inputs spike once each) + 12 x 10 hidden; NeuronOPs = 22 neurons x 2 windows x 10 steps
    assert dyn.spikes_per_neuron == 1.0 and dyn.silent_fraction == 0.0
    assert dyn.synops_per_sample == 784 * 12 + 12 * 10 and dyn.neuron_ops_per_sample == 22 * 2 * 10
    assert dyn.energy_proxy == 784 * 12 + 12 * 10 + 22 * 2 * 10
    win = pd.read_csv(out / "windows.csv")
    assert win[win.threshold == "dynamic"].inside.tolist() == [1.0]
    vs = pd.read_csv(out / "vs_steps.csv")
    assert vs.steps.tolist() == [5] and vs.dt_s.iloc[0] == pytest.approx(2e-4)
    ae = pd.read_csv(out / "autoencoder.csv").iloc[0]
    assert ae.synops_per_sample == 784 * 8 + 8 * 6 + 6 * 784 and ae.neuron_ops_per_sample == (8 + 6 + 784) * 3 * 10
    assert ae.ann_psnr > 0 and 0 < ae.snn_ssim <= 1
    ab = pd.read_csv(out / "ablations.csv")
    assert ab.source.str.startswith("committed").all() and len(ab) == 2
    text = (out / "summary.md").read_text()
    for heading in ("## 1. Classification", "## 2. Accuracy vs steps", "## 3. Where the spikes fall",
                    "## 4. Autoencoder", "## 5. Ablations"):
        assert heading in text, heading
    for name in ("spike_times_mlp_dynamic.png", "spike_times_mlp_fixed.png", "spike_times_autoencoder.png",
                 "autoencoder_reconstructions.png", "accuracy_vs_steps.png", "accuracy_vs_time.png", "ablations.png"):
        assert (out / name).stat().st_size > 1000, name


def test_ablation_directions_by_hand():
    ab = pd.DataFrame([
        dict(network="mlp", row="baseline", ann=0.973, snn=0.975),
        dict(network="mlp", row="without hard constraint", ann=0.971, snn=0.964),           # loss 0.7 > -0.2 + 0.5
        dict(network="mlp", row="ReLU instead of ReLU1", ann=0.974, snn=0.974),             # loss 0.0 < 0.3
        dict(network="mlp", row="without pre-activation normalization", ann=0.976, snn=0.976),  # ANN not below
        dict(network="cnn", row="baseline", ann=0.98, snn=0.98),
        dict(network="cnn", row="without pre-activation normalization", ann=0.97, snn=0.968),  # below, loss 0.2
    ])
    got = ttfs_report.ablation_directions(ab)
    assert got.moves_as_table_iii.tolist() == ["yes", "no", "no", "yes"]
    assert got.loss_points.tolist() == pytest.approx([0.7, 0.0, 0.0, 0.2])
    assert got.baseline_loss_points.tolist() == pytest.approx([-0.2, -0.2, -0.2, 0.0])
    assert got.table_iii_loss_points.tolist() == pytest.approx([4.62, 26.43, -0.07, -0.07])
