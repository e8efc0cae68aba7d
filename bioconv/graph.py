"""Backend-free layer graph: import a torch network, fold batch norm, drop dropout, and reduce it to
spiking populations joined by affine projections.

The seam of the package: importers (torch today) produce a `LayerGraph` of numpy arrays; the mapping
and the simulators only see its `Populations` view, in which every chain of linear operations
(linear, conv, average pooling, flatten, residual addition, folded batch norm) between two
non-linearities has been composed into one sparse matrix per source population.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .errors import BioconvError


class UnsupportedLayerError(BioconvError, TypeError):
    """A network contains a layer or operation the converter does not support."""


@dataclass
class Node:
    """One operation: ``op`` in OPS, inputs by node name, numpy parameters, output shape (no batch)."""

    name: str
    op: str
    inputs: list[str]
    params: dict = field(default_factory=dict)
    shape: tuple = ()


OPS = ("input", "linear", "conv2d", "avgpool2d", "maxpool2d", "flatten", "relu", "relu1", "add")
#: Suffixes of the two populations of a ReLU1 unit: ReLU1(z) = relu(z) - relu(z - 1).
RELU_PART, EXCESS = ":relu", ":excess"
#: Operations after which a spiking population sits.
NONLINEAR = ("relu", "relu1", "maxpool2d")


@dataclass
class LayerGraph:
    nodes: list[Node]
    output: str

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    @property
    def input_shape(self) -> tuple:
        return self.nodes[0].shape

    def forward(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Activations of every node for a batch ``x`` of shape (B, *input_shape), float64."""
        import torch
        import torch.nn.functional as F

        acts = {}
        with torch.no_grad():
            for n in self.nodes:
                a = [acts[i] for i in n.inputs]
                p = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in n.params.items()}
                if n.op == "input":
                    out = torch.as_tensor(np.asarray(x, dtype=np.float64))
                elif n.op == "linear":
                    out = F.linear(a[0], p["weight"], p.get("bias"))
                elif n.op == "conv2d":
                    out = F.conv2d(a[0], p["weight"], p.get("bias"), stride=p["stride"], padding=p["padding"])
                elif n.op == "avgpool2d":
                    out = F.avg_pool2d(a[0], p["kernel"], p["stride"], p["padding"])
                elif n.op == "maxpool2d":
                    out = F.max_pool2d(a[0], p["kernel"], p["stride"], p["padding"])
                elif n.op == "flatten":
                    out = a[0].reshape(a[0].shape[0], -1)
                elif n.op == "relu":
                    out = F.relu(a[0])
                elif n.op == "relu1":
                    out = torch.clamp(a[0], 0.0, 1.0)
                    acts[n.name + RELU_PART] = F.relu(a[0])
                    acts[n.name + EXCESS] = F.relu(a[0] - 1.0)
                elif n.op == "add":
                    out = a[0] + a[1]
                acts[n.name] = out
        return {k: v.numpy() for k, v in acts.items()}

    def summary(self) -> str:
        lines = [f"{'node':24s} {'op':10s} {'inputs':24s} shape"]
        for n in self.nodes:
            lines.append(f"{n.name:24s} {n.op:10s} {','.join(n.inputs):24s} {n.shape}")
        return "\n".join(lines)


# --- torch import ----------------------------------------------------------------------------------

def from_torch(model, input_shape) -> LayerGraph:
    """Import a torch ``nn.Module`` (sequential or traceable by torch.fx) into a LayerGraph.

    Supported: Linear, Conv2d (stride, padding; groups = 1), BatchNorm1d/2d directly after a Linear or
    Conv2d (folded into it), ReLU (module, functional, method), ReLU1 (Hardtanh(0, 1), clamp(0, 1),
    clip(0, 1)), MaxPool2d, AvgPool2d, Flatten,
    Dropout and Identity (dropped), residual addition. Anything else raises UnsupportedLayerError
    naming the node and its type. ``input_shape`` excludes the batch dimension, e.g. (1, 28, 28).
    """
    import torch
    import torch.fx
    from torch import nn

    model = model.eval()
    try:
        traced = torch.fx.symbolic_trace(model)
    except Exception as err:  # torch.fx raises many types for untraceable code
        raise UnsupportedLayerError(f"cannot trace {type(model).__name__} with torch.fx: {err}") from None
    modules = dict(traced.named_modules())
    nodes: list[Node] = []
    alias: dict[str, str] = {}  # fx node name -> graph node name (for dropped/identity ops)
    output = None

    def src(arg):
        if not isinstance(arg, torch.fx.Node):
            raise UnsupportedLayerError(f"constant operand {arg!r} in the graph is not supported")
        return alias.get(arg.name, arg.name)

    taken: set[str] = set()

    def add(name, op, inputs, **params):
        # Modules are named by their path in the model ("features.3"), functions by torch.fx.
        label = str(name)
        k = 1
        while label in taken:
            k += 1
            label = f"{name}#{k}"
        taken.add(label)
        alias[current.name] = label
        nodes.append(Node(label, op, inputs, params))

    for fx in traced.graph.nodes:
        current = fx
        if fx.op == "placeholder":
            if nodes:
                raise UnsupportedLayerError(f"node {fx.name!r}: networks with several inputs are not supported")
            add("input", "input", [])
        elif fx.op == "output":
            output = src(fx.args[0])
        elif fx.op == "call_module":
            m = modules[fx.target]
            where = f"node {fx.target!r} ({type(m).__name__})"
            x = src(fx.args[0])
            if isinstance(m, (nn.Dropout, nn.Dropout2d, nn.Identity)):
                alias[fx.name] = x
            elif isinstance(m, nn.Linear):
                add(fx.target, "linear", [x], **_wb(m))
            elif isinstance(m, nn.Conv2d):
                if m.groups != 1 or tuple(m.dilation) != (1, 1) or m.padding_mode != "zeros" or isinstance(m.padding, str):
                    raise UnsupportedLayerError(f"{where}: only groups=1, dilation=1, zero padding given as "
                                                f"integers are supported")
                add(fx.target, "conv2d", [x], **_wb(m), stride=_pair(m.stride), padding=_pair(m.padding))
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                if len(fx.args[0].users) != 1:
                    raise UnsupportedLayerError(f"{where}: the layer before batch norm feeds other nodes too, so "
                                                f"batch norm cannot be folded into it")
                _fold_batchnorm(nodes, x, m, where)
                alias[fx.name] = x
            elif isinstance(m, nn.ReLU):
                add(fx.target, "relu", [x])
            elif isinstance(m, nn.Hardtanh) and (m.min_val, m.max_val) == (0.0, 1.0):
                add(fx.target, "relu1", [x])
            elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
                op = "maxpool2d" if isinstance(m, nn.MaxPool2d) else "avgpool2d"
                if getattr(m, "ceil_mode", False) or getattr(m, "dilation", 1) not in (1, (1, 1)):
                    raise UnsupportedLayerError(f"{where}: ceil_mode and dilation are not supported")
                if op == "avgpool2d" and m.divisor_override is not None:
                    raise UnsupportedLayerError(f"{where}: divisor_override is not supported")
                if op == "avgpool2d" and not m.count_include_pad and _pair(m.padding) != (0, 0):
                    raise UnsupportedLayerError(f"{where}: count_include_pad=False with padding is not supported")
                stride = m.stride if m.stride is not None else m.kernel_size
                add(fx.target, op, [x], kernel=_pair(m.kernel_size), stride=_pair(stride), padding=_pair(m.padding))
            elif isinstance(m, nn.Flatten):
                if m.start_dim != 1 or m.end_dim != -1:
                    raise UnsupportedLayerError(f"{where}: only Flatten(start_dim=1, end_dim=-1) is supported")
                add(fx.target, "flatten", [x])
            else:
                raise UnsupportedLayerError(f"{where}: layer type {type(m).__name__} is not supported")
        elif fx.op in ("call_function", "call_method"):
            name = fx.target if isinstance(fx.target, str) else getattr(fx.target, "__name__", str(fx.target))
            where = f"node {fx.name!r} ({fx.op} {name})"
            if fx.target in (torch.relu, torch.nn.functional.relu) or name == "relu":
                add(fx.name, "relu", [src(fx.args[0])])
            elif (fx.target in (torch.clamp, torch.clip, torch.nn.functional.hardtanh) or name in ("clamp", "clip", "hardtanh")) \
                    and _clamp_bounds(fx) == (0.0, 1.0):
                add(fx.name, "relu1", [src(fx.args[0])])
            elif fx.target in (operator.add, torch.add) or name in ("add", "__add__"):
                if len(fx.args) != 2 or fx.kwargs:
                    raise UnsupportedLayerError(f"{where}: only a + b of two tensors is supported")
                add(fx.name, "add", [src(fx.args[0]), src(fx.args[1])])
            elif fx.target is torch.flatten or name == "flatten":
                start = fx.args[1] if len(fx.args) > 1 else fx.kwargs.get("start_dim", 0)
                end = fx.args[2] if len(fx.args) > 2 else fx.kwargs.get("end_dim", -1)
                if start != 1 or end != -1:
                    raise UnsupportedLayerError(f"{where}: only flatten from dimension 1 is supported")
                add(fx.name, "flatten", [src(fx.args[0])])
            elif name == "size" and len(fx.args) == 2 and fx.args[1] == 0:
                alias[fx.name] = "__batch_size__"  # only valid as the first argument of a flattening view
            elif (name in ("view", "reshape") and len(fx.args) == 3 and fx.args[2] == -1
                  and isinstance(fx.args[1], torch.fx.Node) and alias.get(fx.args[1].name) == "__batch_size__"):
                add(fx.name, "flatten", [src(fx.args[0])])
            else:
                raise UnsupportedLayerError(f"{where}: operation {name} is not supported")
        else:
            raise UnsupportedLayerError(f"node {fx.name!r}: fx op {fx.op} ({fx.target}) is not supported")
    graph = LayerGraph(nodes, output)
    _infer_shapes(graph, tuple(input_shape))
    _check_finite(graph)
    return graph


def _clamp_bounds(fx):
    """(min, max) of a clamp/clip/hardtanh call, or None when they are not plain numbers."""
    args = list(fx.args[1:]) + [None, None]
    lo = fx.kwargs.get("min", fx.kwargs.get("min_val", args[0]))
    hi = fx.kwargs.get("max", fx.kwargs.get("max_val", args[1]))
    if "hardtanh" in str(fx.target) and lo is None and hi is None:
        lo, hi = -1.0, 1.0
    try:
        return float(lo), float(hi)
    except (TypeError, ValueError):
        return None


def _pair(v):
    return (int(v), int(v)) if np.isscalar(v) else tuple(int(u) for u in v)


def _wb(m) -> dict:
    p = {"weight": m.weight.detach().double().numpy().copy()}
    if m.bias is not None:
        p["bias"] = m.bias.detach().double().numpy().copy()
    return p


def _fold_batchnorm(nodes, source, bn, where):
    """W' = gamma W / sigma, b' = gamma (b - mu) / sigma + beta (FORMULAS §5, seed 000)."""
    prev = nodes[-1] if nodes else None
    if prev is None or prev.name != source or prev.op not in ("linear", "conv2d"):
        raise UnsupportedLayerError(f"{where}: batch norm must directly follow a Linear or Conv2d layer")
    if bn.running_mean is None or not bn.affine:
        raise UnsupportedLayerError(f"{where}: batch norm needs running statistics and affine parameters")
    sigma = np.sqrt(bn.running_var.double().numpy() + bn.eps)
    gamma, beta = bn.weight.detach().double().numpy(), bn.bias.detach().double().numpy()
    mu = bn.running_mean.double().numpy()
    scale = gamma / sigma
    w = prev.params["weight"]
    prev.params["weight"] = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
    b = prev.params.get("bias", np.zeros(len(scale)))
    prev.params["bias"] = scale * (b - mu) + beta


def _infer_shapes(graph, input_shape):
    acts = graph.forward(np.zeros((1,) + input_shape))
    for n in graph.nodes:
        n.shape = tuple(acts[n.name].shape[1:])


def _check_finite(graph):
    for n in graph.nodes:
        for k, v in n.params.items():
            if isinstance(v, np.ndarray) and not np.all(np.isfinite(v)):
                raise BioconvError(f"node {n.name!r} ({n.op}): parameter {k!r} holds NaN or infinite values")


# --- spiking populations and the affine projections between them ------------------------------------

@dataclass
class Projection:
    """Input of a population from ``source``: ``matrix`` (n_target x n_source, sparse) of weights."""

    source: str
    matrix: sp.csr_matrix


@dataclass
class Population:
    """A layer of spiking units: ``kind`` 'input', 'relu' (rate neurons), 'maxpool' (gate) or 'output'."""

    name: str
    kind: str
    shape: tuple
    projections: list[Projection] = field(default_factory=list)
    bias: np.ndarray | None = None
    pool_groups: np.ndarray | None = None  # maxpool: for each unit of the source, its window (-1: none)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


def populations(graph: LayerGraph) -> list[Population]:
    """Compose the graph into spiking populations joined by sparse affine projections.

    A population sits at the input, after every ReLU (two after a ReLU1: relu(z) and relu(z - 1),
    whose difference is the clamp), after every max pooling (a gate that passes the
    most active input of each window) and at the output (the last affine layer, read out by spike
    count or membrane potential). Each linear chain between populations becomes one matrix per
    source plus a bias: affine maps compose exactly, so this is no approximation.
    """
    consumers = {n.name: [] for n in graph.nodes}
    for n in graph.nodes:
        for i in n.inputs:
            consumers[i].append(n.name)
    pops: list[Population] = []
    # affine[name] = (dict source_population -> sparse matrix, bias vector): node's output as an
    # affine function of population activities.
    affine: dict[str, tuple[dict, np.ndarray]] = {}
    for n in graph.nodes:
        size = int(np.prod(n.shape))
        if n.op == "input":
            pops.append(Population(n.name, "input", n.shape))
            affine[n.name] = ({n.name: sp.identity(size, format="csr")}, np.zeros(size))
            continue
        src = affine[n.inputs[0]]
        if n.op == "relu" or (n.op == "maxpool2d"):
            if n.op == "maxpool2d":
                gate_source = _single_population(src, n, graph)
                groups = _pool_groups(graph.node(n.inputs[0]).shape, n.params)
                pops.append(Population(n.name, "maxpool", n.shape, pool_groups=groups,
                                       projections=[Projection(gate_source, sp.csr_matrix((size, 0)))]))
            else:
                mats, bias = src
                pops.append(Population(n.name, "relu", n.shape,
                                       [Projection(s, m.tocsr()) for s, m in mats.items()], bias))
            affine[n.name] = ({n.name: sp.identity(size, format="csr")}, np.zeros(size))
            continue
        if n.op == "relu1":
            # ReLU1(z) = relu(z) - relu(z - 1): two rate populations, exact in the rate domain.
            mats, bias = src
            projections = [Projection(s, m.tocsr()) for s, m in mats.items()]
            pops.append(Population(n.name + RELU_PART, "relu", n.shape, projections, bias))
            pops.append(Population(n.name + EXCESS, "relu", n.shape, list(projections), bias - 1.0))
            eye = sp.identity(size, format="csr")
            affine[n.name] = ({n.name + RELU_PART: eye, n.name + EXCESS: -eye}, np.zeros(size))
            continue
        if n.op == "add":
            other = affine[n.inputs[1]]
            mats = dict(src[0])
            for s, m in other[0].items():
                mats[s] = mats[s] + m if s in mats else m
            affine[n.name] = (mats, src[1] + other[1])
            continue
        op_matrix, op_bias = _linear_operator(n, graph.node(n.inputs[0]).shape)
        mats = {s: (op_matrix @ m).tocsr() for s, m in src[0].items()}
        affine[n.name] = (mats, op_matrix @ src[1] + op_bias)
    out = graph.output
    if graph.node(out).op in NONLINEAR:
        raise UnsupportedLayerError(f"output node {out!r} must be an affine layer (logits), "
                                    f"not {graph.node(out).op}")
    mats, bias = affine[out]
    pops.append(Population(out, "output", graph.node(out).shape,
                           [Projection(s, m.tocsr()) for s, m in mats.items()], bias))
    for m in mats.values():
        m.eliminate_zeros()
    return pops


def _single_population(src, node, graph):
    mats, bias = src
    if len(mats) != 1 or np.any(bias != 0):
        raise UnsupportedLayerError(f"node {node.name!r} (maxpool2d): max pooling must follow a ReLU directly")
    (s, m), = mats.items()
    if m.shape[0] != m.shape[1] or (m != sp.identity(m.shape[0])).nnz:
        raise UnsupportedLayerError(f"node {node.name!r} (maxpool2d): max pooling must follow a ReLU directly")
    return s


def _pool_groups(in_shape, p):
    """Window index of every input unit of a max pooling, -1 where it falls in no window."""
    C, H, W = in_shape
    kh, kw = p["kernel"]
    sh, sw = p["stride"]
    if p["padding"] != (0, 0) or (kh, kw) != (sh, sw):
        raise UnsupportedLayerError("max pooling: only non-overlapping windows without padding "
                                    f"(kernel == stride) are supported, got kernel {p['kernel']}, "
                                    f"stride {p['stride']}, padding {p['padding']}")
    Ho, Wo = (H - kh) // sh + 1, (W - kw) // sw + 1
    groups = -np.ones((C, H, W), dtype=np.int64)
    c, y, x = np.meshgrid(np.arange(C), np.arange(Ho * kh), np.arange(Wo * kw), indexing="ij")
    groups[c, y, x] = (c * Ho + y // kh) * Wo + x // kw
    return groups.ravel()


def _linear_operator(n: Node, in_shape) -> tuple[sp.csr_matrix, np.ndarray]:
    """The sparse matrix (n_out x n_in) and bias of one linear node, on flattened C-order arrays."""
    n_in = int(np.prod(in_shape))
    n_out = int(np.prod(n.shape))
    if n.op == "flatten":
        return sp.identity(n_in, format="csr"), np.zeros(n_in)
    if n.op == "linear":
        W = n.params["weight"]
        return sp.csr_matrix(W), n.params.get("bias", np.zeros(W.shape[0]))
    if n.op in ("conv2d", "avgpool2d"):
        C, H, W = in_shape
        Co, Ho, Wo = n.shape
        if n.op == "conv2d":
            weight = n.params["weight"]  # (Co, C, kh, kw)
            kh, kw = weight.shape[2:]
        else:
            kh, kw = n.params["kernel"]
        sh, sw = n.params["stride"]
        ph, pw = n.params["padding"]
        # Every (output unit, kernel tap) pair, vectorized: rows = output index, cols = input index.
        o_c, o_y, o_x, ci, ky, kx = np.meshgrid(np.arange(Co), np.arange(Ho), np.arange(Wo),
                                               np.arange(C) if n.op == "conv2d" else np.array([0]),
                                               np.arange(kh), np.arange(kw), indexing="ij")
        if n.op == "avgpool2d":
            ci = o_c
        iy, ix = o_y * sh - ph + ky, o_x * sw - pw + kx
        inside = (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)  # zero padding contributes nothing
        rows = ((o_c * Ho + o_y) * Wo + o_x)[inside]
        cols = ((ci * H + iy) * W + ix)[inside]
        if n.op == "conv2d":
            vals = weight[o_c, ci, ky, kx][inside]
            bias = np.repeat(n.params.get("bias", np.zeros(Co)), Ho * Wo)
        else:
            vals = np.full(rows.shape, 1.0 / (kh * kw))  # count_include_pad=True semantics
            bias = np.zeros(n_out)
        return sp.csr_matrix((vals, (rows, cols)), shape=(n_out, n_in)), bias
    raise UnsupportedLayerError(f"node {n.name!r}: no linear operator for {n.op}")
