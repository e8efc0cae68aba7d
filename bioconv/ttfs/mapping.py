"""Map a ReLU1 network onto ReL-PSP neurons in layer windows (LC-TTFS, seed 004; FORMULAS §8).

Layer ``l`` (the input is layer 0) codes activation ``a`` as one spike at ``t = (l + 1 - a) T_w``
(eq. 7). A hidden unit integrates ``V(t) = v_th sum_j w_ij (t - t_j) / T_w`` (eq. 4): a step
current ``w_ij v_th Cm / T_w`` per input spike into a membrane of capacitance ``Cm``. With the
weight sum at 1 and the dynamic threshold of its window it fires at ``(l + 1 - ReLU1(x)) T_w``
(eq. 15-19). The output layer does not fire: its membrane at ``t = L T_w`` is the logit
(``V = v_th sum_j w_ij a_j``).

Choices (issue 11):
- No data-based normalization: it would rescale weights and break the weight sums.
- ReLU1 is one population (rate coding needs two).
- Hidden biases are refused: train without them (eq. 15 has none). An output bias ``b_i`` is exact
  as the output membrane's initial potential ``b_i v_th`` (V(L) is read, no spike time involved).
- Residual additions are refused (not defined in seed 004).
- A plain ReLU is refused (TTFS codes only [0, 1]); ``strict=False`` converts it as ReLU1 with a
  warning, as it does a violated weight sum (the ablations of Table III).
- Max pooling passes the first spike of its window: max of activations is min of spike times.
- Average pooling, flatten and linear chains are composed into one matrix (weight sums compose).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from brian2 import Quantity, amp, farad, mV, ms, pF, second, volt

from .. import graph as G
from ..units import check_quantity
from .constraints import WeightSumWarning, check_weight_sums


class UnboundedActivationWarning(UserWarning):
    """A ReLU was converted as ReLU1 (``strict=False``): activations above 1 saturate at 1."""


@dataclass
class TTFSProjection:
    source: str
    i: np.ndarray       # presynaptic unit within the source layer
    j: np.ndarray       # postsynaptic unit within the target layer
    weight: np.ndarray  # the ANN weight (dimensionless)


@dataclass
class TTFSLayer:
    """A layer of ReL-PSP neurons (``hidden``), a max-pool gate, the latency-coded input or the output."""

    name: str
    kind: str    # input | hidden | maxpool | output
    shape: tuple
    window: int  # spikes in [window, window + 1) T_w; the output is read at t = window T_w
    projections: list[TTFSProjection] = field(default_factory=list)
    bias: np.ndarray | None = None         # output only: the initial potential, in units of v_th
    pool_groups: np.ndarray | None = None  # maxpool: window index of each source unit (-1: none)
    node: str = ""                         # the ANN node whose weights feed the layer
    weight_sum_deviation: float = 0.0      # worst |sum_j w_ij - 1| (hidden layers)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class TTFSNetwork:
    layers: list[TTFSLayer]
    T_w: Quantity
    v_th: Quantity
    Cm: Quantity
    strict: bool = True

    def layer(self, name: str) -> TTFSLayer:
        return next(p for p in self.layers if p.name == name)

    @property
    def n_windows(self) -> int:
        """L: the output is read at ``t = L T_w``."""
        return self.layers[-1].window

    def out_degree(self, name: str) -> np.ndarray:
        """Outgoing synapses of each unit of layer ``name`` as simulated: its synapses in every
        projection it feeds, plus one per unit that feeds a max-pool gate (`bioconv.ttfs.simulate`
        wires each such unit to its gate). Each spike of the unit is that many synaptic events."""
        n = self.layer(name).size
        degree = np.zeros(n, dtype=np.int64)
        for q in self.layers:
            if q.kind == "maxpool":
                if q.projections[0].source == name:
                    degree += q.pool_groups >= 0
                continue
            for proj in q.projections:
                if proj.source == name:
                    degree += np.bincount(proj.i, minlength=n)
        return degree

    @property
    def n_neurons(self) -> int:
        """The ReL-PSP neurons (hidden and output layers), each updated once per time step: seed 004's
        NeuronOPs count (eq. 22). The input is a spike generator and max-pool gates only pass a spike
        (no membrane to update), so neither is counted."""
        return sum(p.size for p in self.layers if p.kind in ("hidden", "output"))

    def current(self, weight) -> Quantity:
        """The step current of a synapse of ANN weight ``weight``: ``w v_th Cm / T_w``."""
        return Quantity(np.asarray(weight, dtype=float) * float(self.v_th * self.Cm / self.T_w), dim=amp.dim)

    def table(self) -> str:
        rows = [f"{'layer':14s} {'kind':8s} {'units':>7s} {'window':>6s} {'synapses':>9s} {'max|sum-1|':>10s} currents"]
        for p in self.layers:
            w = np.concatenate([q.weight for q in p.projections]) if p.projections else np.zeros(0)
            cur = self.current(w) if len(w) else None
            desc = f"[{Quantity(cur.min(), dim=amp.dim)}, {Quantity(cur.max(), dim=amp.dim)}]" if cur is not None else "-"
            rows.append(f"{p.name:14s} {p.kind:8s} {p.size:7d} {p.window:6d} {len(w):9d} "
                        f"{p.weight_sum_deviation:10.2g} {desc}")
        rows.append(f"T_w={self.T_w}, v_th={self.v_th}, Cm={self.Cm}, output read at t = {self.n_windows} T_w")
        return "\n".join(rows)


def check_parameters(*, T_w, v_th, Cm):
    owner = "bioconv.ttfs"
    return (check_quantity(T_w, second.dim, "T_w", owner, positive=True),
            check_quantity(v_th, volt.dim, "v_th", owner, positive=True),
            check_quantity(Cm, farad.dim, "Cm", owner, positive=True))


def map_network(model, *, input_shape=None, T_w=1 * ms, v_th=20 * mV, Cm=100 * pF, strict: bool = True) -> TTFSNetwork:
    """The TTFS network of ``model`` (a torch module, imported with `bioconv.graph.from_torch`, or a
    `bioconv.graph.LayerGraph`). ``T_w``: window length; ``v_th``: the threshold (the paper's 1);
    ``Cm``: the membrane capacitance, which sets the currents. A layer TTFS cannot convert raises
    `bioconv.UnsupportedLayerError` naming it; a hidden layer whose weight sums are not 1 raises
    `WeightSumError` naming it and its worst sum (``strict=False``: a `WeightSumWarning`).
    """
    T_w, v_th, Cm = check_parameters(T_w=T_w, v_th=v_th, Cm=Cm)
    if isinstance(model, G.LayerGraph):
        graph = model
    else:
        if input_shape is None:
            raise G.UnsupportedLayerError("map_network: a torch module needs its input_shape (no batch dimension)")
        graph = G.from_torch(model, input_shape)
    layers: list[TTFSLayer] = []
    window: dict[str, int] = {}
    # affine[node] = (source layer, matrix, bias, last affine node): the node's output as an affine
    # function of one layer's activations.
    affine: dict[str, tuple] = {}
    for n in graph.nodes:
        where = f"node {n.name!r} ({n.op})"
        size = int(np.prod(n.shape))
        if n.op == "input":
            layers.append(TTFSLayer(n.name, "input", n.shape, 0))
            window[n.name] = 0
            affine[n.name] = (n.name, sp.identity(size, format="csr"), np.zeros(size), None)
            continue
        if n.op == "add":
            raise G.UnsupportedLayerError(f"{where}: residual additions are not defined for TTFS coding")
        source, matrix, bias, last = affine[n.inputs[0]]
        if n.op in ("relu", "relu1"):
            if last is None:
                raise G.UnsupportedLayerError(f"{where}: an activation must follow a linear or conv layer")
            if n.op == "relu":
                msg = (f"{where}: TTFS codes activations in [0, 1], a ReLU is unbounded; use ReLU1 "
                       f"(nn.Hardtanh(0, 1) or bioconv.ttfs_train.ReLU1)")
                if strict:
                    raise G.UnsupportedLayerError(msg + ", or pass strict=False to convert it as ReLU1")
                warnings.warn(msg + "; converted as ReLU1 (strict=False)", UnboundedActivationWarning, stacklevel=2)
            if np.any(bias != 0):
                raise G.UnsupportedLayerError(
                    f"node {last!r}: hidden biases are not converted to TTFS (seed 004 eq. 15 has none); "
                    f"build the layer with bias=False")
            layer = f"{last} -> {n.name}"
            deviation = check_weight_sums(layer, matrix, strict=strict)
            m = matrix.tocoo()
            layers.append(TTFSLayer(n.name, "hidden", n.shape, window[source] + 1,
                                    [TTFSProjection(source, m.col.astype(np.int64), m.row.astype(np.int64), m.data)],
                                    node=last, weight_sum_deviation=deviation))
        elif n.op == "maxpool2d":
            src_layer = next(p for p in layers if p.name == source)
            if src_layer.kind not in ("hidden", "input") or last is not None:
                raise G.UnsupportedLayerError(f"{where}: max pooling must follow an activation (or the input) directly")
            groups = G._pool_groups(graph.node(n.inputs[0]).shape, n.params)
            layers.append(TTFSLayer(n.name, "maxpool", n.shape, window[source], pool_groups=groups,
                                    projections=[TTFSProjection(source, np.zeros(0, np.int64), np.zeros(0, np.int64),
                                                                np.zeros(0))]))
        else:
            op_matrix, op_bias = G._linear_operator(n, graph.node(n.inputs[0]).shape)
            last = n.name if n.op in ("linear", "conv2d") else last
            affine[n.name] = (source, (op_matrix @ matrix).tocsr(), op_matrix @ bias + op_bias, last)
            continue
        window[n.name] = layers[-1].window
        affine[n.name] = (n.name, sp.identity(size, format="csr"), np.zeros(size), None)
    out = graph.output
    if graph.node(out).op in G.NONLINEAR:
        raise G.UnsupportedLayerError(f"output node {out!r} must be an affine layer (its membrane is the logit), "
                                      f"not {graph.node(out).op}")
    source, matrix, bias, last = affine[out]
    matrix = matrix.tocsr()
    matrix.eliminate_zeros()
    m = matrix.tocoo()
    layers.append(TTFSLayer(out, "output", graph.node(out).shape, window[source] + 1,
                            [TTFSProjection(source, m.col.astype(np.int64), m.row.astype(np.int64), m.data)],
                            bias=np.asarray(bias, dtype=float), node=last or out))
    return TTFSNetwork(layers, T_w, v_th, Cm, strict)


__all__ = ["TTFSLayer", "TTFSNetwork", "TTFSProjection", "UnboundedActivationWarning", "WeightSumWarning",
           "map_network"]
