"""The ANN side of LC-TTFS (seed 004 sec. III): ReLU1, the weight-sum penalty and projection, the
pre-activation loss, and a tiny constrained network converted and simulated. Needs torch."""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed: these tests train torch networks")
nn = torch.nn

from bioconv import graph as G, ttfs  # noqa: E402
from bioconv.ttfs_train import ReLU1, WeightSumConstraint  # noqa: E402


def _mlp(seed=0, bias=False):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 5, bias=bias), ReLU1(), nn.Linear(5, 4, bias=bias), ReLU1(), nn.Linear(4, 3))


def test_relu1_clamps_to_the_unit_interval_and_is_imported_as_one():
    x = torch.tensor([-0.5, 0.0, 0.3, 1.0, 2.5])
    assert ReLU1()(x).tolist() == pytest.approx([0.0, 0.0, 0.3, 1.0, 1.0])
    g = G.from_torch(_mlp(), (6,))
    assert [n.op for n in g.nodes].count("relu1") == 2


def test_hard_projection_example_on_a_torch_layer():
    layer = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        layer.weight[:] = torch.tensor([[0.5, 0.3, 0.4]])
    WeightSumConstraint(nn.Sequential(layer, ReLU1(), nn.Linear(1, 1)), preactivation=False).project()
    assert layer.weight[0].tolist() == pytest.approx([0.4333, 0.2333, 0.3333], abs=5e-5)


def test_projection_is_per_conv_output_channel_and_spares_the_output_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, bias=False), ReLU1(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    out_before = model[3].weight.detach().clone()
    c = WeightSumConstraint(model, preactivation=False)
    assert c.worst_deviation() > 1e-2
    assert float(c.penalty()) == pytest.approx(float((model[0].weight.sum((1, 2, 3)) - 1).abs().sum()), rel=1e-6)
    c.project()
    assert model[0].weight.sum((1, 2, 3)).tolist() == pytest.approx([1.0] * 3, abs=1e-6)
    assert c.worst_deviation() < 1e-6 and float(c.penalty()) < 1e-5
    assert torch.equal(model[3].weight, out_before)


def test_preactivation_loss_pulls_towards_the_standardized_preactivation():
    model = _mlp()
    c = WeightSumConstraint(model)
    model.train()
    x = torch.rand(64, 6)
    model(x)
    # the same pre-activations computed by hand (calling the layers would run the hooks again)
    z = x @ model[0].weight.T
    target = (z - z.mean(0)) / z.std(0) / 3
    expected = float((z - target).abs().mean())
    z2 = z.clamp(0, 1) @ model[2].weight.T
    target2 = (z2 - z2.mean(0)) / z2.std(0) / 3
    expected += float((z2 - target2).abs().mean())
    assert float(c.preactivation_loss()) == pytest.approx(expected, rel=1e-4)
    assert float(c.preactivation_loss()) == 0.0  # forgotten after use: one forward pass, one loss
    model.eval()
    model(x)
    assert float(c.preactivation_loss()) == 0.0  # evaluation passes are not collected
    c.remove()


def test_constrained_training_step_keeps_sums_at_one_and_converts():
    # A few steps of the user-facing recipe on a tiny net; then TTFS conversion accepts it (strict)
    # and the SNN decides like the ANN on these inputs.
    model = _mlp(1)
    c = WeightSumConstraint(model)
    c.project()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(32, 6, generator=g), torch.randint(0, 3, (32,), generator=g)
    model.train()
    for _ in range(5):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y) + c.loss()
        loss.backward()
        opt.step()
        c.project()
    model.eval()
    assert c.worst_deviation() < 1e-6
    net = ttfs.map_network(model, input_shape=(6,))
    assert [p.kind for p in net.layers] == ["input", "hidden", "hidden", "output"]
    out = ttfs.simulate(net, x.numpy(), steps=100)
    with torch.no_grad():
        logits = model(x).numpy()
    assert np.abs(out.potential - logits).max() < 0.1
    unconstrained = _mlp(1)
    with pytest.raises(ttfs.WeightSumError, match="worst|weight sum of unit"):
        ttfs.map_network(unconstrained, input_shape=(6,))


def test_hidden_bias_is_refused_naming_the_layer():
    with pytest.raises(G.UnsupportedLayerError, match="node '0': hidden biases"):
        ttfs.map_network(_mlp(bias=True), input_shape=(6,))


def test_reconstruction_training_keeps_the_constraints_and_lowers_the_error():
    # The autoencoder task (seed 004 Table IV): the squared error of the sigmoid of the output; the
    # hidden weight sums stay at 1, the output layer is free, and the trained net converts (strict).
    from bioconv import data, zoo
    from bioconv.ttfs_train import reconstruct, train
    split = data.mnist_subset()
    tiny = data.Split(split.x_train[:256], split.y_train[:256], split.x_test[:64], split.y_test[:64], "tiny")
    model = zoo.autoencoder_ttfs()
    torch.manual_seed(0)
    with torch.no_grad():
        before = float(((torch.sigmoid(model(torch.from_numpy(tiny.x_test))) - torch.from_numpy(tiny.x_test).flatten(1))
                        ** 2).mean())
    rec = train(model, tiny, seed=0, epochs=2, lr=3e-3, weight_decay=0.0, task="reconstruction", threads=1)
    assert rec["task"] == "reconstruction" and rec["test_mse"] < before and "test_accuracy" not in rec
    assert rec["worst_weight_sum_deviation"] < 1e-5
    net = ttfs.map_network(model, input_shape=(1, 28, 28))
    assert net.n_windows == 6 and net.n_neurons == 1200 and net.layers[-1].size == 784
    assert reconstruct(np.array([0.0, np.log(3.0)])) == pytest.approx([0.5, 0.75])
    with pytest.raises(ValueError, match="task must be one of"):
        train(model, tiny, seed=0, epochs=1, lr=1e-3, weight_decay=0.0, task="regression")
