"""Backend-free layer graph: import a torch network, fold batch norm, drop dropout, and reduce it to
spiking populations joined by affine projections.

The seam of the package: importers produce a `LayerGraph` of numpy arrays (`from_torch` from a torch
module; `from_nodes`, `sequential` and `load` from numpy arrays, without torch); the mapping
and the simulators only see its `Populations` view, in which every chain of linear operations
(linear, conv, average pooling, flatten, residual addition, folded batch norm) between two
non-linearities has been composed into one sparse matrix per source population. The graph's own
forward pass is numpy, so only `from_torch` needs torch.
"""
from __future__ import annotations

import functools
import json
import operator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .conv_geometry import ConvGeometry, KernelTerm
from .errors import BioconvError
from .optional import require_torch


class UnsupportedLayerError(BioconvError, TypeError):
    """A network contains a layer or operation the converter does not support."""


class ShapeError(UnsupportedLayerError):
    """A layer's parameters do not fit the shape of its input."""


@dataclass
class Node:
    """One operation: ``op`` in OPS, inputs by node name, numpy parameters, output shape (no batch)."""

    name: str
    op: str
    inputs: list[str]
    params: dict = field(default_factory=dict)
    shape: tuple = ()


OPS = ("input", "linear", "conv2d", "avgpool2d", "maxpool2d", "flatten", "scale", "relu", "relu1", "add")
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
        """Activations of every node for a batch ``x`` of shape (B, *input_shape), float64 (numpy: no
        torch needed). A ReLU1 node also gives its two populations' activations (`RELU_PART`, `EXCESS`)."""
        acts = {}
        for n in self.nodes:
            a = [acts[i] for i in n.inputs]
            p = n.params
            if n.op == "input":
                out = np.asarray(x, dtype=np.float64)
            elif n.op == "linear":
                out = a[0] @ p["weight"].T
                if "bias" in p:
                    out = out + p["bias"]
            elif n.op == "conv2d":
                win = _windows(a[0], p["weight"].shape[2:], p["stride"], p["padding"], 0.0)
                # (B, Ho, Wo, Co) -> (B, Co, Ho, Wo); tensordot hands the sum to BLAS
                out = np.tensordot(win, p["weight"], axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
                if "bias" in p:
                    out = out + p["bias"][:, None, None]
                out = np.ascontiguousarray(out)
            elif n.op == "avgpool2d":  # zero padding counts in the mean (torch's count_include_pad=True)
                out = _windows(a[0], p["kernel"], p["stride"], p["padding"], 0.0).mean(axis=(4, 5))
            elif n.op == "maxpool2d":  # padding never wins the max
                out = _windows(a[0], p["kernel"], p["stride"], p["padding"], -np.inf).max(axis=(4, 5))
            elif n.op == "flatten":
                out = a[0].reshape(a[0].shape[0], -1)
            elif n.op == "scale":
                out = a[0] * p["scale"]
            elif n.op == "relu":
                out = np.maximum(a[0], 0.0)
            elif n.op == "relu1":
                out = np.clip(a[0], 0.0, 1.0)
                acts[n.name + RELU_PART] = np.maximum(a[0], 0.0)
                acts[n.name + EXCESS] = np.maximum(a[0] - 1.0, 0.0)
            elif n.op == "add":
                out = a[0] + a[1]
            else:
                raise UnsupportedLayerError(f"node {n.name!r}: unknown operation {n.op!r}")
            acts[n.name] = out
        return acts

    def save(self, path) -> Path:
        """Write the graph to an ``.npz`` file (numpy arrays and a JSON description; no pickle): `load`
        reads it back without torch."""
        arrays, nodes = {}, []
        for k, n in enumerate(self.nodes):
            attrs = {}
            for key, v in n.params.items():
                if isinstance(v, np.ndarray):
                    arrays[f"{k}/{key}"] = v
                else:
                    attrs[key] = list(v) if isinstance(v, tuple) else v
            nodes.append(dict(name=n.name, op=n.op, inputs=list(n.inputs), params=attrs,
                              arrays=[key for key, v in n.params.items() if isinstance(v, np.ndarray)]))
        header = dict(format=GRAPH_FORMAT, output=self.output, input_shape=list(self.input_shape), nodes=nodes)
        if hasattr(path, "write"):  # a binary file object (bioconv.io puts the graph inside a network file)
            np.savez(path, __graph__=np.array(json.dumps(header)), **arrays)
            return path
        path = Path(path)
        with open(path, "wb") as fh:  # a file object: numpy would otherwise append .npz to other names
            np.savez(fh, __graph__=np.array(json.dumps(header)), **arrays)
        return path

    def summary(self) -> str:
        lines = [f"{'node':24s} {'op':10s} {'inputs':24s} shape"]
        for n in self.nodes:
            lines.append(f"{n.name:24s} {n.op:10s} {','.join(n.inputs):24s} {n.shape}")
        return "\n".join(lines)


def _windows(x, kernel, stride, padding, fill):
    """Sliding windows (B, C, Ho, Wo, kh, kw) of ``x`` (B, C, H, W) padded with ``fill`` (a view)."""
    ph, pw = padding
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    win = np.lib.stride_tricks.sliding_window_view(x, tuple(kernel), axis=(2, 3))
    return win[:, :, ::stride[0], ::stride[1]]


# --- graphs from numpy arrays (no torch) ------------------------------------------------------------

#: Version of `LayerGraph.save`'s file layout.
GRAPH_FORMAT = 1
#: Parameters of each operation: (array parameters, other parameters with their defaults); None:
#: the stride of a pooling defaults to its kernel.
_PARAMS = {
    "input": ((), {}),
    "linear": (("weight", "bias"), {}),
    "conv2d": (("weight", "bias"), {"stride": 1, "padding": 0}),
    "avgpool2d": ((), {"kernel": None, "stride": None, "padding": 0}),
    "maxpool2d": ((), {"kernel": None, "stride": None, "padding": 0}),
    "flatten": ((), {}), "relu": ((), {}), "relu1": ((), {}), "add": ((), {}),
    # elementwise factors (a scalar or one per element): NIR's Scale, and the unit changes around the
    # neurons of a network imported from NIR (bioconv.io.from_nir)
    "scale": (("scale",), {}),
}


def from_nodes(nodes: list[Node], input_shape, output: str | None = None) -> LayerGraph:
    """A LayerGraph from nodes given as numpy arrays, without torch.

    The first node is the input (``op="input"``, no inputs); every other node names earlier nodes
    as its inputs (two for ``add``, one otherwise). ``output`` defaults to the last node. Parameters,
    in torch's layouts: ``linear`` ``weight`` (out, in) and optional ``bias`` (out,), on a flat
    input; ``conv2d`` ``weight`` (C_out, C_in, kh, kw), optional ``bias`` (C_out,), ``stride`` (1)
    and ``padding`` (0); ``avgpool2d`` / ``maxpool2d`` ``kernel``, ``stride`` (the kernel) and
    ``padding`` (0); sizes as an int or a pair. ``input_shape`` excludes the batch dimension. The
    nodes are copied (arrays as float64) and their shapes inferred; a node that does not fit raises
    UnsupportedLayerError naming it.
    """
    input_shape = tuple(int(d) for d in input_shape)
    if not nodes or nodes[0].op != "input":
        raise UnsupportedLayerError("the first node must be the input (op 'input')")
    built: list[Node] = []
    shapes: dict[str, tuple] = {}
    for n in nodes:
        where = f"node {n.name!r} ({n.op})"
        if n.op not in _PARAMS:
            raise UnsupportedLayerError(f"{where}: unknown operation; supported: {', '.join(OPS)}")
        if n.name in shapes:
            raise UnsupportedLayerError(f"{where}: another node has this name")
        if n.op == "input" and built:
            raise UnsupportedLayerError(f"{where}: graphs with several inputs are not supported")
        arity = {"input": 0, "add": 2}.get(n.op, 1)
        if len(n.inputs) != arity:
            raise UnsupportedLayerError(f"{where}: takes {arity} input(s), got {list(n.inputs)}")
        missing = [i for i in n.inputs if i not in shapes]
        if missing:
            raise UnsupportedLayerError(f"{where}: input(s) {missing} are not earlier nodes")
        arrays, others = _PARAMS[n.op]
        unknown = set(n.params) - set(arrays) - set(others)
        if unknown:
            raise UnsupportedLayerError(f"{where}: unknown parameter(s) {sorted(unknown)}; "
                                        f"{n.op} takes {sorted(arrays + tuple(others))}")
        params = {k: np.array(n.params[k], dtype=np.float64) for k in arrays if n.params.get(k) is not None}
        for k, default in others.items():
            v = n.params.get(k, default)
            if v is None and k == "stride":
                v = params["kernel"]
            if v is None:
                raise UnsupportedLayerError(f"{where}: parameter {k!r} is missing")
            try:
                params[k] = _pair(v)
            except (TypeError, ValueError):
                params[k] = ()
            if len(params[k]) != 2:
                raise UnsupportedLayerError(f"{where}: parameter {k!r} must be an int or a pair, got {v!r}")
        node = Node(n.name, n.op, list(n.inputs), params)
        node.shape = input_shape if n.op == "input" else _output_shape(node, [shapes[i] for i in n.inputs], where)
        shapes[n.name] = node.shape
        built.append(node)
    output = built[-1].name if output is None else output
    if output not in shapes:
        raise UnsupportedLayerError(f"output {output!r} is not a node of the graph")
    graph = LayerGraph(built, output)
    _check_finite(graph)
    return graph


def sequential(input_shape, layers) -> LayerGraph:
    """A chain of layers from numpy arrays, without torch: ``layers`` holds operation names or
    ``(op, params)`` pairs, as in `from_nodes`. Nodes are named by position ("0", "1", ...), as
    `from_torch` names the layers of an ``nn.Sequential`` without dropout or batch norm. Example::

        sequential((1, 8, 8), [("conv2d", {"weight": w1, "bias": b1, "padding": 1}), "relu",
                               ("maxpool2d", {"kernel": 2}), "flatten", ("linear", {"weight": w2})])
    """
    nodes = [Node("input", "input", [])]
    for k, layer in enumerate(layers):
        op, params = (layer, {}) if isinstance(layer, str) else layer
        nodes.append(Node(str(k), op, [nodes[-1].name], dict(params)))
    return from_nodes(nodes, input_shape)


def load(path) -> LayerGraph:
    """Read a graph written by `LayerGraph.save` (no torch, no pickle); ``path`` may be a binary file object."""
    path = path if hasattr(path, "read") else Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            header = json.loads(str(f["__graph__"]))
            arrays = {k: f[k] for k in f.files if k != "__graph__"}
    except FileNotFoundError:
        raise BioconvError(f"graph file {str(path)!r} does not exist") from None
    except (OSError, ValueError, KeyError) as err:
        raise BioconvError(f"graph file {str(path)!r} is not a saved LayerGraph: {type(err).__name__}: {err}") from None
    if header.get("format") != GRAPH_FORMAT:
        raise BioconvError(f"graph file {str(path)!r} has format {header.get('format')!r}; this bioconv reads "
                           f"format {GRAPH_FORMAT}")
    nodes = [Node(d["name"], d["op"], d["inputs"], {**d["params"], **{k: arrays[f"{i}/{k}"] for k in d["arrays"]}})
             for i, d in enumerate(header["nodes"])]
    return from_nodes(nodes, header["input_shape"], header["output"])


def _output_shape(n: Node, inputs: list[tuple], where: str) -> tuple:
    """Shape of node ``n``'s output from its inputs' shapes, or UnsupportedLayerError naming it."""
    s = inputs[0] if inputs else ()
    p = n.params
    if n.op == "linear":
        w = p["weight"]
        if w.ndim != 2 or len(s) != 1 or s[0] != w.shape[1]:
            raise ShapeError(f"{where}: weight {w.shape} (out, in) does not fit its input of shape {s} "
                                        f"(a linear layer takes a flat input: flatten first)")
        if "bias" in p and p["bias"].shape != (w.shape[0],):
            raise ShapeError(f"{where}: bias {p['bias'].shape} does not fit weight {w.shape}")
        return (w.shape[0],)
    if n.op in ("conv2d", "avgpool2d", "maxpool2d"):
        if len(s) != 3:
            raise ShapeError(f"{where}: needs an input of shape (C, H, W), got {s}")
        if n.op == "conv2d":
            w = p["weight"]
            if w.ndim != 4 or w.shape[1] != s[0]:
                raise ShapeError(f"{where}: weight {w.shape} (C_out, C_in, kh, kw) does not fit its "
                                            f"input of shape {s}")
            if "bias" in p and p["bias"].shape != (w.shape[0],):
                raise ShapeError(f"{where}: bias {p['bias'].shape} does not fit weight {w.shape}")
            channels, kernel = w.shape[0], w.shape[2:]
        else:
            channels, kernel = s[0], p["kernel"]
        size = [(s[1 + d] + 2 * p["padding"][d] - kernel[d]) // p["stride"][d] + 1 for d in (0, 1)]
        # torch's limit on padding for pooling: a window never lies wholly in the padding
        pad_max = [k // 2 for k in kernel] if n.op != "conv2d" else [np.inf, np.inf]
        if (min(kernel) < 1 or min(p["stride"]) < 1 or min(p["padding"]) < 0 or min(size) < 1
                or any(pd > m for pd, m in zip(p["padding"], pad_max))):
            raise ShapeError(f"{where}: kernel {tuple(kernel)}, stride {p['stride']} and padding "
                                        f"{p['padding']} do not fit an input of shape {s}")
        return (channels, *size)
    if n.op == "flatten":
        return (int(np.prod(s)),)
    if n.op == "scale":
        if "scale" not in p or p["scale"].shape not in ((), tuple(s)):
            raise ShapeError(f"{where}: scale {p['scale'].shape if 'scale' in p else None} must be a scalar or "
                             f"of its input's shape {s}")
        return s
    if n.op == "add" and inputs[0] != inputs[1]:
        raise ShapeError(f"{where}: adds inputs of different shapes {inputs[0]} and {inputs[1]}")
    return s


# --- torch import ----------------------------------------------------------------------------------

def from_torch(model, input_shape) -> LayerGraph:
    """Import a torch ``nn.Module`` (sequential or traceable by torch.fx) into a LayerGraph.

    Supported: Linear, Conv2d (stride, padding; groups = 1), BatchNorm1d/2d directly after a Linear or
    Conv2d (folded into it), ReLU (module, functional, method), ReLU1 (Hardtanh(0, 1), clamp(0, 1),
    clip(0, 1)), MaxPool2d, AvgPool2d, Flatten,
    Dropout and Identity (dropped), residual addition. Anything else raises UnsupportedLayerError
    naming the node and its type. ``input_shape`` excludes the batch dimension, e.g. (1, 28, 28).
    Needs torch (MissingDependencyError without it).
    """
    torch = require_torch("bioconv.graph.from_torch (importing a torch network)")
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
    shapes = {}
    for n in graph.nodes:
        where = f"node {n.name!r} ({n.op})"
        n.shape = input_shape if n.op == "input" else _output_shape(n, [shapes[i] for i in n.inputs], where)
        shapes[n.name] = n.shape


def _check_finite(graph):
    for n in graph.nodes:
        for k, v in n.params.items():
            if isinstance(v, np.ndarray) and not np.all(np.isfinite(v)):
                raise BioconvError(f"node {n.name!r} ({n.op}): parameter {k!r} holds NaN or infinite values")


# --- spiking populations and the affine projections between them ------------------------------------

class Projection:
    """Input of a population from ``source``: ``matrix`` (n_target x n_source, sparse) of weights.

    Made by `populations` from the chain of linear operations it composes, the matrix is computed
    when first read (a CIFAR-size network's convolutions unroll into hundreds of millions of
    synapses, which the shared-kernel simulation never needs). ``terms`` is the same projection as
    a sum: a `conv_geometry.KernelTerm` for each convolution (optionally after a non-overlapping
    average pooling) read straight from a population, and one sparse `Projection` for the rest.
    """

    def __init__(self, source: str, matrix: sp.csr_matrix | None = None, *, expr: "_Expr | None" = None,
                 prune: bool = False):
        if (matrix is None) == (expr is None):
            raise ValueError("Projection: give a matrix or an expression, not both")
        self.source = source
        self._matrix = None if matrix is None else matrix
        self._expr = expr
        self._prune = prune  # drop explicit zeros when computed (the output layer's projections)

    @property
    def matrix(self) -> sp.csr_matrix:
        if self._matrix is None:
            m = self._expr.matrix().tocsr()
            if self._prune:
                m.eliminate_zeros()
            self._matrix = m
        return self._matrix

    @property
    def terms(self) -> list:
        """The projection as a sum of `KernelTerm` (one per convolution) and at most one sparse
        `Projection` holding everything else, in the order the graph adds them."""
        if self._expr is None:
            return [self]
        kernels, rest = [], []
        for t in self._expr.terms():
            (kernels if isinstance(t, KernelTerm) else rest).append(t)
        if not rest:
            return kernels
        total = rest[0] if len(rest) == 1 else functools.reduce(_Sum, rest)
        return kernels + [Projection(self.source, expr=total, prune=self._prune)]

    @property
    def unshared(self) -> str | None:
        """Why a convolution in this projection cannot keep its kernel shared (None: none such)."""
        if self._expr is None:
            return None
        return next((r for r in (t.unshared() for t in self._expr.terms() if not isinstance(t, KernelTerm)) if r),
                    None)

    def __repr__(self):
        return f"Projection({self.source!r}, terms={[type(t).__name__ for t in self.terms]})"


# --- lazy composition: the chain of linear operations feeding a population, from one source --------
# Each expression computes its sparse matrix exactly as an eager composition would (the same scipy
# products and sums, in the same order), so the unrolled weights do not depend on when they are computed.

class _Expr:
    _m = None

    def matrix(self) -> sp.csr_matrix:
        if self._m is None:
            self._m = self._compute()
        return self._m

    def terms(self) -> list:
        kernel = self.kernel_term()
        return [kernel if kernel is not None else self]

    def kernel_term(self):
        return None

    def unshared(self) -> str | None:
        return None


class _Eye(_Expr):
    """A population itself (``sign`` -1: its negative, the excess part of a ReLU1)."""

    def __init__(self, size: int, sign: float = 1.0):
        self.size, self.sign = size, sign

    def _compute(self):
        eye = sp.identity(self.size, format="csr")
        return eye if self.sign == 1.0 else -eye


class _Apply(_Expr):
    """One linear node applied to the expression of its input."""

    def __init__(self, node: Node, in_shape: tuple, child: _Expr):
        self.node, self.in_shape, self.child = node, in_shape, child

    def _compute(self):
        op_matrix, _ = _linear_operator(self.node, self.in_shape)
        return (op_matrix @ self.child.matrix()).tocsr()

    def kernel_term(self):
        """A convolution read from a population (or from a non-overlapping average pooling of one):
        the kernel's values are those the composed matrix holds (w, w * 1/(kh kw) after a pooling,
        -w on a negated population), computed by the same products."""
        n = self.node
        if n.op != "conv2d":
            return None
        child, in_shape, pool, pool_padding = self.child, self.in_shape, None, (0, 0)
        kernel = n.params["weight"] * 1.0
        if isinstance(child, _Apply) and child.node.op == "avgpool2d" and _nonoverlapping(child.node):
            pool, pool_padding = tuple(child.node.params["kernel"]), tuple(child.node.params["padding"])
            kernel = n.params["weight"] * (1.0 / (pool[0] * pool[1]))  # the pooling matrix's value
            child, in_shape = child.child, child.in_shape
        if not isinstance(child, _Eye):
            return None
        if child.sign != 1.0:
            kernel = kernel * child.sign
        geometry = ConvGeometry(in_shape, n.shape, n.params["weight"].shape[2:], n.params["stride"],
                                n.params["padding"], pool, pool_padding)
        return KernelTerm(geometry, kernel)

    def unshared(self):
        ops = []
        e = self
        while isinstance(e, _Apply):
            ops.append(e.node)
            e = e.child
        if not any(o.op == "conv2d" for o in ops):
            return None
        chain = " -> ".join(f"{o.name} ({o.op}" + (f", kernel {o.params['kernel']} stride {o.params['stride']}"
                                                    if o.op == "avgpool2d" else "") + ")" for o in reversed(ops))
        return (f"{chain}: only a convolution read from a population, or from a non-overlapping average "
                f"pooling of one, keeps its kernel shared")


class _Sum(_Expr):
    """Two branches added (residual addition)."""

    def __init__(self, a: _Expr, b: _Expr):
        self.a, self.b = a, b

    def _compute(self):
        return self.a.matrix() + self.b.matrix()

    def terms(self):
        return self.a.terms() + self.b.terms()


def _nonoverlapping(node: Node) -> bool:
    return tuple(node.params["kernel"]) == tuple(node.params["stride"])


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
    pops: list[Population] = []
    # affine[name] = (dict source_population -> expression of its matrix, bias vector): node's output
    # as an affine function of population activities. The matrices are computed when first read
    # (`Projection.matrix`); `Projection.terms` reads the convolutions' kernels from the expressions.
    affine: dict[str, tuple[dict, np.ndarray]] = {}
    for n in graph.nodes:
        size = int(np.prod(n.shape))
        if n.op == "input":
            pops.append(Population(n.name, "input", n.shape))
            affine[n.name] = ({n.name: _Eye(size)}, np.zeros(size))
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
                                       [Projection(s, expr=m) for s, m in mats.items()], bias))
            affine[n.name] = ({n.name: _Eye(size)}, np.zeros(size))
            continue
        if n.op == "relu1":
            # ReLU1(z) = relu(z) - relu(z - 1): two rate populations, exact in the rate domain.
            mats, bias = src
            projections = [Projection(s, expr=m) for s, m in mats.items()]
            pops.append(Population(n.name + RELU_PART, "relu", n.shape, projections, bias))
            pops.append(Population(n.name + EXCESS, "relu", n.shape, list(projections), bias - 1.0))
            affine[n.name] = ({n.name + RELU_PART: _Eye(size), n.name + EXCESS: _Eye(size, -1.0)}, np.zeros(size))
            continue
        if n.op == "add":
            other = affine[n.inputs[1]]
            mats = dict(src[0])
            for s, m in other[0].items():
                mats[s] = _Sum(mats[s], m) if s in mats else m
            affine[n.name] = (mats, src[1] + other[1])
            continue
        in_shape = graph.node(n.inputs[0]).shape
        mats = {s: _Apply(n, in_shape, m) for s, m in src[0].items()}
        affine[n.name] = (mats, _apply_to_bias(n, in_shape, src[1]))
    out = graph.output
    if graph.node(out).op in NONLINEAR:
        raise UnsupportedLayerError(f"output node {out!r} must be an affine layer (logits), "
                                    f"not {graph.node(out).op}")
    mats, bias = affine[out]
    pops.append(Population(out, "output", graph.node(out).shape,
                           [Projection(s, expr=m, prune=True) for s, m in mats.items()], bias))
    return pops


def _apply_to_bias(n: Node, in_shape, bias: np.ndarray) -> np.ndarray:
    """A linear node's output for the bias vector of its input, plus its own bias: through its sparse
    operator where the input bias is nonzero, else its own bias alone (what the operator would
    give, without building the operator, which for a large convolution holds hundreds of millions
    of entries)."""
    if np.any(bias):
        op_matrix, op_bias = _linear_operator(n, in_shape)
        return op_matrix @ bias + op_bias
    return np.zeros(int(np.prod(n.shape))) + _own_bias(n, in_shape)


def _single_population(src, node, graph):
    mats, bias = src
    if len(mats) != 1 or np.any(bias != 0):
        raise UnsupportedLayerError(f"node {node.name!r} (maxpool2d): max pooling must follow a ReLU directly")
    (s, expr), = mats.items()
    if not (isinstance(expr, _Eye) and expr.sign == 1.0):
        m = expr.matrix()
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


def _own_bias(n: Node, in_shape) -> np.ndarray:
    """A linear node's own bias on its flattened output (zeros for the operations without one)."""
    if n.op in ("flatten", "scale", "avgpool2d"):
        return np.zeros(int(np.prod(n.shape)))
    if n.op == "linear":
        return n.params.get("bias", np.zeros(n.params["weight"].shape[0]))
    if n.op == "conv2d":
        return np.repeat(n.params.get("bias", np.zeros(n.shape[0])), n.shape[1] * n.shape[2])
    raise UnsupportedLayerError(f"node {n.name!r}: no linear operator for {n.op}")


def _linear_operator(n: Node, in_shape) -> tuple[sp.csr_matrix, np.ndarray]:
    """The sparse matrix (n_out x n_in) and bias of one linear node, on flattened C-order arrays."""
    n_in = int(np.prod(in_shape))
    n_out = int(np.prod(n.shape))
    bias = _own_bias(n, in_shape)
    if n.op == "flatten":
        return sp.identity(n_in, format="csr"), bias
    if n.op == "scale":
        return sp.diags(np.broadcast_to(n.params["scale"], in_shape).ravel(), format="csr"), bias
    if n.op == "linear":
        return sp.csr_matrix(n.params["weight"]), bias
    # conv2d, avgpool2d
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
    else:
        vals = np.full(rows.shape, 1.0 / (kh * kw))  # count_include_pad=True semantics
    return sp.csr_matrix((vals, (rows, cols)), shape=(n_out, n_in)), bias
