"""Training an ANN for LC-TTFS conversion (seed 004 sec. III): ReLU1, the weight-sum constraint
(penalty eq. 14 and hard projection) and the pre-activation normalization loss (eq. 20). Needs torch.

Usage on a model of one's own::

    constraint = WeightSumConstraint(model)        # hidden layers: every Linear/Conv2d but the last
    constraint.project()                           # start on the constraint
    for xb, yb in loader:
        opt.zero_grad()
        loss = cross_entropy(model(xb), yb) + constraint.loss()   # after the forward pass
        loss.backward(); opt.step()
        constraint.project()                       # the hard constraint, after every step

Choices the paper leaves open (documented in the README's TTFS section):
- ``L_W`` is eq. 14 as written, a sum over hidden units of ``|sum_j w_ij - 1|``; ``lambda_W = 1e-4``.
  Its gradient has the same sign for every weight of a unit, and Adam (the zoo's optimizer) scales
  each weight's step by its own gradient history, so a large lambda_W dominates weights whose task
  gradient is small: on the MNIST MLP (30 epochs, seed 0) lambda_W = 1e-2 gave 96.2 % test accuracy,
  1e-4 gave 97.3 %. Right after a projection every sum is exactly 1, so the penalty acts on the drift
  of one step (and alone when the projection is switched off, as in the ablation).
- ``A`` is the pre-activation standardized per unit over the batch (per channel over batch and
  positions for a conv layer), scaled to standard deviation 1/3 (``N(0, 1/9)``) and detached: the
  loss pulls each pre-activation towards its own standardized value, as batch norm would set it.
- ``L_A`` is the mean of ``|z - A|`` over the batch and the units of a layer, summed over hidden
  layers (the paper's sum divided by batch and layer size, so ``lambda_A`` does not depend on
  them); ``lambda_A = 1e-1``.
"""
from __future__ import annotations

import time

import numpy as np

from . import data
from .optional import require_torch

torch = require_torch("bioconv.ttfs_train")
nn = torch.nn

LAMBDA_W = 1e-4
LAMBDA_A = 1e-1
TARGET_STD = 1.0 / 3.0


class ReLU1(nn.Hardtanh):
    """clamp(x, 0, 1) (seed 004 eq. 13). A Hardtanh(0, 1), so `bioconv.graph.from_torch` imports it."""

    def __init__(self):
        super().__init__(0.0, 1.0)


class WeightSumConstraint:
    """The LC-TTFS constraints on a torch model's hidden layers: ``penalty()`` (eq. 14),
    ``preactivation_loss()`` (eq. 20, from the last forward pass), ``loss()`` (both, weighted) and
    ``project()`` (the hard constraint: ``w_ij <- w_ij - (sum_j w_ij - 1) / N_i`` per unit, per
    output channel of a conv layer).

    ``layers``: the hidden Linear/Conv2d modules (those followed by ReLU1); default every Linear and
    Conv2d of ``model`` but the last, the output layer, which is read from its membrane and exempt.
    Biases are left alone: TTFS conversion refuses hidden biases, so build hidden layers without.
    """

    def __init__(self, model, layers=None, *, lambda_w: float = LAMBDA_W, lambda_a: float = LAMBDA_A,
                 target_std: float = TARGET_STD, preactivation: bool = True):
        if layers is None:
            found = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
            if len(found) < 2:
                raise ValueError("WeightSumConstraint: the model needs a hidden Linear/Conv2d layer before its output")
            layers = found[:-1]
        self.layers = list(layers)
        for m in self.layers:
            if not isinstance(m, (nn.Linear, nn.Conv2d)):
                raise TypeError(f"WeightSumConstraint: {type(m).__name__} is not a Linear or Conv2d layer")
        self.lambda_w, self.lambda_a, self.target_std = float(lambda_w), float(lambda_a), float(target_std)
        self._preacts: list = []
        self._hooks = [m.register_forward_hook(self._keep) for m in self.layers] if preactivation else []

    def _keep(self, module, inputs, output):
        if module.training:
            self._preacts.append(output)

    def remove(self):
        """Detach the forward hooks."""
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def sums(self) -> list:
        """Every hidden unit's weight sum, one tensor per layer."""
        return [m.weight.flatten(1).sum(1) for m in self.layers]

    def penalty(self):
        """L_W = sum over hidden units of |sum_j w_ij - 1| (eq. 14)."""
        return sum((s - 1).abs().sum() for s in self.sums())

    def preactivation_loss(self):
        """L_A over the pre-activations of the last training forward pass (eq. 20); then forgets them."""
        total = 0.0
        for z in self._preacts:
            dims = [0] if z.dim() == 2 else [0, 2, 3]
            mean, std = z.mean(dims, keepdim=True), z.std(dims, keepdim=True)
            target = ((z - mean) / (std + 1e-8) * self.target_std).detach()
            total = total + (z - target).abs().mean()
        self._preacts = []
        return total

    def loss(self):
        """lambda_W L_W + lambda_A L_A (eq. 21 without the task loss)."""
        loss = self.lambda_w * self.penalty()
        if self._hooks:
            loss = loss + self.lambda_a * self.preactivation_loss()
        return loss

    @torch.no_grad()
    def project(self):
        """The hard constraint: each unit's weights shifted equally so that they sum to 1."""
        for m in self.layers:
            w = m.weight.flatten(1)
            w -= (w.sum(1, keepdim=True) - 1.0) / w.shape[1]

    @torch.no_grad()
    def worst_deviation(self) -> float:
        return max(float((s - 1).abs().max()) for s in self.sums())


#: The tasks `train` knows: what the model's output is compared with.
TASKS = ("classification", "reconstruction")


def reconstruct(logits):
    """The reconstruction of an autoencoder trained with ``task="reconstruction"``: the sigmoid of
    its output (seed 004 sec. V-A). A torch tensor or a numpy array (e.g. the TTFS output membranes
    at t = L, in units of v_th, which are the logits)."""
    if isinstance(logits, torch.Tensor):
        return torch.sigmoid(logits)
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def train(model, split: data.Split, *, seed: int, epochs: int, lr: float, weight_decay: float, batch_size: int = 64,
          hard: bool = True, soft: bool = True, preactivation: bool = True, lambda_w: float = LAMBDA_W,
          lambda_a: float = LAMBDA_A, task: str = "classification", threads: int | None = None) -> dict:
    """Seeded training under the LC-TTFS constraints, with the recipe of `bioconv.zoo.train` (Adam,
    cosine schedule, 2-pixel shifts) so that constrained and reference networks differ only in the
    constraints. ``hard``, ``soft``, ``preactivation`` switch the projection, L_W and L_A (the
    ablations of seed 004 Table III). ``task``: ``"classification"`` (cross entropy on the labels)
    or ``"reconstruction"`` (an autoencoder, seed 004 Table IV: the squared error between `reconstruct`
    of the output, the sigmoid, and the flattened, equally shifted input, summed over the pixels of
    an image and averaged over the batch; the per-pixel mean would make the task gradient 784 times
    smaller against the constraint losses, whose weights were chosen beside a per-sample cross
    entropy). ``threads``: torch threads during training (restored after; None leaves them). Returns
    the training record."""
    from .zoo import _augment, accuracy

    if task not in TASKS:
        raise ValueError(f"ttfs_train.train: task must be one of {TASKS}, got {task!r}")

    if threads is not None:
        before = torch.get_num_threads()
        torch.set_num_threads(int(threads))
        try:
            return train(model, split, seed=seed, epochs=epochs, lr=lr, weight_decay=weight_decay,
                         batch_size=batch_size, hard=hard, soft=soft, preactivation=preactivation, lambda_w=lambda_w,
                         lambda_a=lambda_a, task=task)
        finally:
            torch.set_num_threads(before)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    constraint = WeightSumConstraint(model, lambda_w=lambda_w if soft else 0.0, lambda_a=lambda_a,
                                     preactivation=preactivation)
    if hard:
        constraint.project()
    x, y = torch.from_numpy(split.x_train), torch.from_numpy(split.y_train)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(len(x)))
        for k in range(0, len(x), batch_size):
            idx = order[k:k + batch_size]
            opt.zero_grad()
            xb = _augment(x[idx], rng)
            out = model(xb)
            if task == "classification":
                task_loss = nn.functional.cross_entropy(out, y[idx])
            else:  # the squared error of each image (summed over its pixels), averaged over the batch
                task_loss = ((torch.sigmoid(out) - xb.flatten(1)) ** 2).sum(1).mean()
            loss = task_loss + constraint.loss()
            loss.backward()
            opt.step()
            if hard:
                constraint.project()
        sched.step()
    model.eval()
    constraint.remove()
    train_s = round(time.perf_counter() - t0, 1)
    if task == "classification":
        scores = dict(train_accuracy=accuracy(model, split.x_train, split.y_train),
                      test_accuracy=accuracy(model, split.x_test, split.y_test))
    else:
        scores = dict(train_mse=_mse(model, split.x_train), test_mse=_mse(model, split.x_test))
    return dict(dataset=split.name, seed=seed, epochs=epochs, lr=lr, weight_decay=weight_decay, task=task,
                constraints=dict(hard=hard, soft=soft, preactivation=preactivation,
                                 lambda_w=lambda_w if soft else 0.0, lambda_a=lambda_a if preactivation else 0.0,
                                 target_std=TARGET_STD),
                worst_weight_sum_deviation=constraint.worst_deviation(), **scores,
                train_seconds=train_s, torch=torch.__version__)


def _mse(model, x: np.ndarray) -> float:
    """Mean squared error of the reconstructions (`reconstruct`) of ``x``, over pixels and images."""
    with torch.no_grad():
        rec = torch.sigmoid(model(torch.from_numpy(x)))
    return float(((rec - torch.from_numpy(x).flatten(1)) ** 2).mean())
