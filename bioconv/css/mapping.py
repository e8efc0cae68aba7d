"""Map a ReLU network onto layers of TSA neurons (CSS coding, seed 002 Algorithm 2; FORMULAS §7).

Every layer codes its activation ``a`` as a signed spike train of value ``a / theta_l`` (in units of
its spike amplitude ``theta_l``). Calibration (sec. 4.2.2): ``theta_l = p_l / S_T``, ``p_l`` the
99.99th percentile (``percentile``) of layer l's ANN activations over the calibration data, so
that ``theta_l S_T = p_l`` is the largest value a train codes whatever T. Algorithm 2 folds the
amplitudes into the weights: ``W_l = (theta_src / theta_l) W_hat_l`` and a bias per input step
``b_l = b_hat_l / (theta_l S_T)``, added only during the layer's T input steps. Both depend on the
ratios of the ``p_l`` (and the amplitude-adjustment factors of A.18, `factor`), not on T: one
mapped network serves any number of coding steps.

Choices (issue 13):
- Percentiles are of |a|: the same for ReLU layers, and the range a signed train codes for the
  input (the ternary encoder codes negative inputs too) and the output's logits. The output layer
  does not fire: its accumulated input is read at the end of its input window (the logits in units
  of its theta, `bioconv.css.simulate`).
- Average pooling, flatten and linear chains are composed into the next layer's matrix (an affine
  map of the spike-coded values, so no approximation).
- Max pooling is refused: the max of several spike-coded values is not a spike train the layer
  below sends (it would need extra TSA layers computing max(a, b) = b + relu(a - b), each adding
  coding error and Ts steps); convert a network with average pooling instead.
- ReLU1 is refused (TSA-ReLU codes a ReLU); a residual addition is converted when its branches
  come from layers of the same depth (their trains are then aligned in time), refused otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import graph as G
from .. import normalize
from ..errors import BioconvError
from .code import encodable

#: The calibration percentile of seed 002 (sec. 4.2.2).
PERCENTILE = 99.99


@dataclass
class CSSProjection:
    source: str
    i: np.ndarray       # presynaptic unit within the source layer
    j: np.ndarray       # postsynaptic unit within the target layer
    weight: np.ndarray  # the ANN weight (W_hat), not normalized


@dataclass
class CSSLayer:
    """The CSS-coded input, a hidden layer of TSA-ReLU neurons, or the (non-firing) output."""

    name: str
    kind: str    # input | hidden | output
    shape: tuple
    depth: int   # weight layers between the input and this layer (input: 0)
    scale: float  # p_l: the activation percentile theta_l S_T stands for (output: of |logits|)
    projections: list[CSSProjection] = field(default_factory=list)
    bias: np.ndarray | None = None  # the ANN bias (b_hat), not normalized
    factor: float = 1.0             # A.18 amplitude adjustment: theta_l = factor p_l / S_T

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def theta(self, beta: float, steps: int) -> float:
        """The spike amplitude theta_l (in activation units) at T = ``steps``."""
        return self.factor * self.scale / encodable(beta, steps)


@dataclass
class CSSNetwork:
    layers: list[CSSLayer]
    percentile: float = PERCENTILE
    #: the A.18 rounds applied (`bioconv.css.adjust`): one dict per round
    adjustments: list = field(default_factory=list)

    def layer(self, name: str) -> CSSLayer:
        return next(p for p in self.layers if p.name == name)

    @property
    def weight_layers(self) -> int:
        """L: weight layers from the input to the output."""
        return self.layers[-1].depth

    def weights(self, layer: CSSLayer, projection: CSSProjection) -> np.ndarray:
        """Algorithm 2's normalized weights ``(theta_src / theta_l) W_hat`` (T cancels)."""
        src = self.layer(projection.source)
        return projection.weight * (src.factor * src.scale) / (layer.factor * layer.scale)

    def bias_per_step(self, layer: CSSLayer) -> np.ndarray:
        """Algorithm 2's bias per input step ``b_hat / (theta_l S_T)`` (T cancels)."""
        b = np.zeros(layer.size) if layer.bias is None else layer.bias
        return b / (layer.factor * layer.scale)

    def with_factors(self, factors: dict) -> "CSSNetwork":
        """A copy whose layers' amplitude factors are ``factors`` (layer name -> factor)."""
        layers = [CSSLayer(p.name, p.kind, p.shape, p.depth, p.scale, p.projections, p.bias,
                           float(factors.get(p.name, p.factor))) for p in self.layers]
        return CSSNetwork(layers, self.percentile, list(self.adjustments))

    def table(self, beta: float = 1.5, steps: int = 10) -> str:
        rows = [f"{'layer':16s} {'kind':7s} {'units':>7s} {'depth':>5s} {'p_l':>10s} {'factor':>7s} "
                f"{'theta (T=' + str(steps) + ')':>13s} {'synapses':>9s}"]
        for p in self.layers:
            n_syn = sum(len(q.weight) for q in p.projections)
            rows.append(f"{p.name:16s} {p.kind:7s} {p.size:7d} {p.depth:5d} {p.scale:10.4g} {p.factor:7.4f} "
                        f"{p.theta(beta, steps):13.4g} {n_syn:9d}")
        return "\n".join(rows)


def check_graph(graph: G.LayerGraph) -> None:
    """Refuse (`UnsupportedLayerError`, naming the node) what CSS conversion does not convert."""
    for n in graph.nodes:
        where = f"node {n.name!r} ({n.op})"
        if n.op == "maxpool2d":
            raise G.UnsupportedLayerError(
                f"{where}: CSS coding does not convert max pooling: the max of spike-coded values is not a "
                f"spike train the layer below sends (it would take extra TSA layers, max(a, b) = b + relu(a - b), "
                f"each adding coding error and Ts steps of latency). Use average pooling (nn.AvgPool2d, folded "
                f"into the next layer), e.g. bioconv.zoo.mnist_convnet_avgpool")
        if n.op == "relu1":
            raise G.UnsupportedLayerError(f"{where}: CSS coding converts ReLU activations (the TSA-ReLU neuron); "
                                          f"a ReLU1 (clamp to [0, 1]) is not converted")


def map_network(graph: G.LayerGraph, calibration: np.ndarray, *, percentile: float = PERCENTILE,
                pops: list[G.Population] | None = None) -> tuple[CSSNetwork, dict]:
    """The CSS network of ``graph`` calibrated on inputs ``calibration`` (N, *input_shape): returns
    it and the calibration activations (population -> (N, units)). A layer that never activates on
    the calibration data is refused by name (its amplitude would be zero)."""
    check_graph(graph)
    pops = G.populations(graph) if pops is None else pops
    acts = normalize.activations(graph, pops, calibration)
    depth: dict[str, int] = {}
    layers = []
    for p in pops:
        if p.kind == "input":
            depth[p.name] = 0
            projections = []
        else:
            sources = {q.source: depth[q.source] for q in p.projections}
            if len(set(sources.values())) > 1:
                raise G.UnsupportedLayerError(
                    f"population {p.name!r}: its inputs come from layers at different depths ({sources}); CSS "
                    f"trains of different depths are not aligned in time (a residual addition must join layers "
                    f"of equal depth)")
            depth[p.name] = max(sources.values()) + 1
            projections = []
            for q in p.projections:
                m = q.matrix.tocoo()
                projections.append(CSSProjection(q.source, m.col.astype(np.int64), m.row.astype(np.int64),
                                                 np.asarray(m.data, dtype=np.float64)))
        a = acts[p.name]
        # |a|: hidden activations are ReLUs anyway; inputs and logits may be signed, and a signed
        # train codes both signs up to the same range
        scale = float(np.percentile(np.abs(a), percentile))
        if not np.isfinite(scale) or scale <= 0:
            raise BioconvError(f"CSS calibration: population {p.name!r} has a {percentile}th-percentile activation of "
                               f"{scale!r} on the calibration data: it never activates, so it has no spike amplitude "
                               f"(use other calibration data)")
        kind = {"input": "input", "relu": "hidden", "output": "output"}[p.kind]
        bias = None if p.bias is None else np.asarray(p.bias, dtype=np.float64)
        layers.append(CSSLayer(p.name, kind, tuple(p.shape), depth[p.name], scale, projections, bias))
    return CSSNetwork(layers, float(percentile)), acts


__all__ = ["CSSLayer", "CSSNetwork", "CSSProjection", "PERCENTILE", "check_graph", "map_network"]
