"""The geometry of a convolution between two populations, kept apart from its weights.

`graph.populations` composes every chain of linear operations into one projection per source. Where
that chain is a 2-D convolution, optionally after a non-overlapping average pooling (which then acts
as a larger kernel with a stride), the projection also keeps a `KernelTerm`: the `ConvGeometry`
(kernel, stride, padding, channels, input and output shapes, the pooling) and the kernel itself,
stored once. The shared-kernel pathway of the simulator (`bioconv.simulate.shared_conv`) computes
every target of a spike from this record, and a compact network file can store it instead of the
unrolled synapses (`to_dict` / `from_dict`).

Indices are those of the populations' C-order flattening: unit (c, y, x) of a (C, H, W) population
is ``(c * H + y) * W + x``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ConvGeometry:
    """How a convolution reaches a target population from a source population.

    ``in_shape``: the source population (C, H, W). ``pool``: the window (= stride) of a
    non-overlapping average pooling applied to the source first, or None; ``pool_padding`` its zero
    padding (counted in the mean, torch's ``count_include_pad=True``). ``kernel``, ``stride``,
    ``padding``: the convolution on the (pooled) map. ``out_shape``: the target population
    (C_out, H_out, W_out). The weights are not part of it (`KernelTerm`).
    """

    in_shape: tuple
    out_shape: tuple
    kernel: tuple
    stride: tuple
    padding: tuple
    pool: tuple | None = None
    pool_padding: tuple = (0, 0)

    def __post_init__(self):
        for name in ("in_shape", "out_shape", "kernel", "stride", "padding", "pool_padding"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if self.pool is not None:
            object.__setattr__(self, "pool", tuple(int(v) for v in self.pool))
        self._check()

    def _check(self):
        C, H, W = self.conv_in_shape
        Co, Ho, Wo = self.out_shape
        fits = all(((H, W)[d] + 2 * self.padding[d] - self.kernel[d]) // self.stride[d] + 1 == (Ho, Wo)[d]
                   for d in (0, 1))
        if (len(self.in_shape) != 3 or min(self.kernel) < 1 or min(self.stride) < 1 or min(self.padding) < 0
                or min(self.pool_padding) < 0 or (self.pool is not None and min(self.pool) < 1)
                or min(H, W) < 1 or not fits):
            raise ValueError(f"ConvGeometry: kernel {self.kernel}, stride {self.stride}, padding {self.padding}"
                             f"{'' if self.pool is None else f', pool {self.pool} (padding {self.pool_padding})'} "
                             f"do not map {self.in_shape} onto {self.out_shape}")

    @property
    def conv_in_shape(self) -> tuple:
        """The map the convolution reads: the source, or its pooled map."""
        C, H, W = self.in_shape
        if self.pool is None:
            return (C, H, W)
        return (C, *((n + 2 * pp - p) // p + 1 for n, p, pp in zip((H, W), self.pool, self.pool_padding)))

    @property
    def kernel_shape(self) -> tuple:
        """(C_out, C_in, kh, kw), torch's layout."""
        return (self.out_shape[0], self.in_shape[0], *self.kernel)

    @property
    def n_source(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def n_target(self) -> int:
        return int(np.prod(self.out_shape))

    def to_dict(self) -> dict:
        """A JSON-able record; `from_dict` reads it back."""
        return dict(in_shape=list(self.in_shape), out_shape=list(self.out_shape), kernel=list(self.kernel),
                    stride=list(self.stride), padding=list(self.padding),
                    pool=None if self.pool is None else list(self.pool), pool_padding=list(self.pool_padding))

    @classmethod
    def from_dict(cls, d: dict) -> "ConvGeometry":
        return cls(**{k: (None if v is None else tuple(v)) for k, v in d.items()})

    # -- the unrolled connectivity, computed from the geometry --------------------------------------
    def pooled_position(self, axis: int) -> np.ndarray:
        """For each source row (axis 0) or column (axis 1), the row/column of the map the convolution
        reads that holds it, or -1 where it falls in no pooling window."""
        n = self.in_shape[1 + axis]
        pos = np.arange(n)
        if self.pool is None:
            return pos
        m = self.conv_in_shape[1 + axis]
        u = (pos + self.pool_padding[axis]) // self.pool[axis]
        return np.where(u < m, u, -1)

    def _taps(self, axis: int) -> np.ndarray:
        """(k, n) bool: whether tap k of the kernel reaches some output from position n of the map the
        convolution reads."""
        k, s, p = self.kernel[axis], self.stride[axis], self.padding[axis]
        n_out = self.out_shape[1 + axis]
        u = np.arange(self.conv_in_shape[1 + axis])[None, :]
        num = u + p - np.arange(k)[:, None]
        return (num >= 0) & (num % s == 0) & (num // s < n_out)

    def out_degree(self, kernel: np.ndarray | None = None) -> np.ndarray:
        """Targets of each source unit (flattened source order): taps whose weight in ``kernel``
        (C_out, C_in, kh, kw) is nonzero, or every tap when ``kernel`` is None. The unrolled form
        stores exactly these synapses (zero products are dropped when it is composed)."""
        if kernel is None:
            nnz = np.full((self.in_shape[0], *self.kernel), self.out_shape[0], dtype=np.int64)
        else:
            nnz = np.count_nonzero(np.asarray(kernel) != 0, axis=0)  # (C_in, kh, kw)
        deg_map = np.einsum("cab,au,bv->cuv", nnz, self._taps(0).astype(np.int64), self._taps(1).astype(np.int64))
        uy, ux = self.pooled_position(0), self.pooled_position(1)
        out = deg_map[:, np.maximum(uy, 0)][:, :, np.maximum(ux, 0)]
        out = out * ((uy >= 0)[None, :, None] & (ux >= 0)[None, None, :])
        return out.reshape(-1)

    def n_synapses(self, kernel: np.ndarray | None = None) -> int:
        """Synapses of the unrolled form (`out_degree` summed)."""
        return int(self.out_degree(kernel).sum())

    def connections(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (target, source, kernel tap) of the unrolled form, taps as flat indices into
        (C_out, C_in, kh, kw). Memory grows with the unrolled synapse count: for checks and small
        networks."""
        Co, Ho, Wo = self.out_shape
        C, Hc, Wc = self.conv_in_shape
        kh, kw = self.kernel
        o_c, o_y, o_x, ci, ky, kx = np.meshgrid(np.arange(Co), np.arange(Ho), np.arange(Wo), np.arange(C),
                                               np.arange(kh), np.arange(kw), indexing="ij")
        uy, ux = o_y * self.stride[0] - self.padding[0] + ky, o_x * self.stride[1] - self.padding[1] + kx
        inside = (uy >= 0) & (uy < Hc) & (ux >= 0) & (ux < Wc)
        target = ((o_c * Ho + o_y) * Wo + o_x)[inside]
        tap = (((o_c * C + ci) * kh + ky) * kw + kx)[inside]
        ci, uy, ux = ci[inside], uy[inside], ux[inside]
        H, W = self.in_shape[1:]
        if self.pool is None:
            return target, (ci * H + uy) * W + ux, tap
        # each pooled unit reads the source units of its window that are not padding
        ph, pw = self.pool
        dy, dx = np.meshgrid(np.arange(ph), np.arange(pw), indexing="ij")
        y = uy[:, None] * ph - self.pool_padding[0] + dy.ravel()[None, :]
        x = ux[:, None] * pw - self.pool_padding[1] + dx.ravel()[None, :]
        ok = (y >= 0) & (y < H) & (x >= 0) & (x < W)
        n = ok.sum(axis=1)
        return (np.repeat(target, n), ((np.repeat(ci, n) * H + y[ok]) * W + x[ok]), np.repeat(tap, n))


@dataclass
class KernelTerm:
    """One convolution's share of a projection: its geometry and its kernel (C_out, C_in, kh, kw),
    the value of each tap with the pooling's factor included (so the unrolled weight of a synapse
    is exactly its tap's value). In a mapped network the kernel is a Brian2 quantity in the synapse
    model's weight unit."""

    geometry: ConvGeometry
    kernel: object

    def __post_init__(self):
        if np.shape(self.kernel) != self.geometry.kernel_shape:
            raise ValueError(f"KernelTerm: kernel of shape {np.shape(self.kernel)}, the geometry takes "
                             f"{self.geometry.kernel_shape}")

    def unrolled(self) -> tuple[np.ndarray, np.ndarray, object]:
        """(source index, target index, weight) of every synapse of the unrolled form, in source order
        (and target order within a source), without the zero-weight ones."""
        target, source, tap = self.geometry.connections()
        flat = np.asarray(self.kernel).reshape(-1)
        keep = flat[tap] != 0
        order = np.lexsort((target[keep], source[keep]))
        w = np.asarray(self.kernel).reshape(-1)[tap[keep][order]]
        if hasattr(self.kernel, "dim"):
            from brian2 import Quantity
            w = Quantity(w, dim=self.kernel.dim)
        return source[keep][order], target[keep][order], w
