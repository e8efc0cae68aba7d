"""A convolution pathway whose kernel is stored once: the targets of every spike are computed from
the convolution's geometry instead of being read from one stored synapse per (source, target) pair.

`SharedConvPathway` is a Brian2 object (a `CodeRunner`) that bioconv's standalone device renders with
its own template (``templates/bioconv_conv_pathway.cpp``). It runs where Brian2 runs the pathway of a
`Synapses` object of the same name (slot ``synapses``, order -1, name ``<synapses>_pre``), and its
event code is Brian2's code generation of the synapse model's ``on_pre`` (delta, exponential,
alpha; with or without the refractoriness test; for a phase-coded input, its weight scaled by a
shared variable of the source), with ``w`` read from the kernel, the postsynaptic variables from
the target and the presynaptic ones (shared only) from the source. For each spiking source unit, in
the order of the source's spike space (the order in which the unrolled form's events reach a
target), the template walks the output channels and the kernel taps whose outputs exist and
applies one event per target; a target receives at most one event per source spike from one kernel,
as it would from one synapse. So the unrolled and the shared forms apply the same values in the
same order to every target: the same spikes.

Memory per copy does not depend on the number of unrolled synapses: the pathway holds the kernel
(C_in x C_out x kh x kw values, once for all copies, or once per copy when a sweepable build moves
the weights per copy) and nothing per synapse.

Only bioconv's standalone device has the template; on Brian2's runtime device and on brian2cuda
the network keeps the unrolled form (`network.conv_form`).
"""
from __future__ import annotations

import re

import numpy as np
from brian2.core.names import Nameable
from brian2.core.variables import Variables
from brian2.groups.group import CodeRunner, Group
from brian2.units.fundamentalunits import get_dimensions

from ..conv_geometry import KernelTerm

TEMPLATE = "bioconv_conv_pathway"


def kernel_layout(kernel) -> np.ndarray:
    """The order in which the pathway stores a kernel (C_out, C_in, kh, kw): input channel first, so
    that the taps one spike reads lie together."""
    return np.ascontiguousarray(np.asarray(kernel).transpose(1, 0, 2, 3)).reshape(-1)


class SharedConvPathway(CodeRunner, Group):
    """The events of ``term`` (a `KernelTerm` in the synapse model's weight unit) from the B copies of
    ``source`` to those of ``target``: copy b of a population of n units holds indices b*n .. b*n+n-1
    of its group. ``on_pre``: the synapse model's event code (``w`` and ``<var>_post`` names, as in a
    `Synapses`). ``kernel_copies``: 1 (all copies share the kernel) or B (each copy its own, laid out
    copy after copy in ``w``). ``name``: the name of the `Synapses` object the unrolled form would
    create; the pathway is named ``<name>_pre``, as that Synapses' pathway, so that it runs in the
    same place of the schedule."""

    def __init__(self, source, target, term: KernelTerm, on_pre: str, *, n_copies: int, kernel_copies: int = 1,
                 name: str):
        g = term.geometry
        if len(source) != n_copies * g.n_source or len(target) != n_copies * g.n_target:
            raise ValueError(f"SharedConvPathway {name!r}: groups of {len(source)} and {len(target)} units do not hold "
                             f"{n_copies} copies of {g.in_shape} -> {g.out_shape}")
        if kernel_copies not in (1, n_copies):
            raise ValueError(f"SharedConvPathway {name!r}: kernel_copies must be 1 or {n_copies}, got {kernel_copies}")
        self.codeobj_class = None
        self.source, self.target, self.geometry = source, target, g
        self.kernel_copies = int(kernel_copies)
        self.n_copies = int(n_copies)
        Nameable.__init__(self, name=f"{name}_pre")
        self.variables = Variables(self)
        self.variables.add_reference("_spikespace", source)
        size = self.kernel_copies * int(np.prod(g.kernel_shape))
        dim = get_dimensions(term.kernel)
        self.variables.add_constant("N", value=size)  # a Brian2 variable owner's size: the kernel values
        self.variables.add_array("w", size=size, dimensions=dim, constant=True, index="_kidx")
        # Indices the template computes (not stored): neither is unique over a step's events, so Brian2
        # checks that the event code does not depend on their order, as it does for a Synapses' indices.
        for index in ("_kidx", "_postidx"):
            self.variables.add_auxiliary_variable(index, dtype=np.int32)
            self.variables[index].unique = False
        for var_name, var in target.variables.items():
            if var_name.startswith("_"):
                continue
            try:
                self.variables.add_reference(f"{var_name}_post", target, var_name,
                                             index="0" if var.scalar else "_postidx")
            except TypeError:  # a variable with its own indexing (as Synapses skips them)
                continue
        # Presynaptic variables the event code reads (a phase-coded input's spike weight): only the
        # source's shared ones, one value for every spike of the step (the template computes no
        # presynaptic index).
        for var_name in sorted(set(re.findall(r"\b([A-Za-z]\w*)_pre\b", on_pre))):
            var = source.variables[var_name] if var_name in source.variables else None
            if var is None or not var.scalar:
                raise ValueError(f"SharedConvPathway {name!r}: the event code reads {var_name}_pre, which is not a "
                                 f"shared variable of {source.name!r} (a shared-kernel pathway reads only those)")
            self.variables.add_reference(f"{var_name}_pre", source, var_name, index="0")
        self.namespace = {}
        conv_h, conv_w = g.conv_in_shape[1:]
        template_kwds = dict(eventspace_variable=source.variables["_spikespace"], n_source=g.n_source,
                             n_target=g.n_target, in_c=g.in_shape[0], in_h=g.in_shape[1], in_w=g.in_shape[2],
                             pool=g.pool, pool_padding=g.pool_padding, conv_h=conv_h, conv_w=conv_w,
                             out_c=g.out_shape[0], out_h=g.out_shape[1], out_w=g.out_shape[2],
                             kh=g.kernel[0], kw=g.kernel[1], sh=g.stride[0], sw=g.stride[1],
                             ph=g.padding[0], pw=g.padding[1],
                             kernel_stride=0 if self.kernel_copies == 1 else int(np.prod(g.kernel_shape)))
        CodeRunner.__init__(self, group=self, template=TEMPLATE, code=on_pre, name=None, clock=source.clock,
                            when="synapses", order=-1, needed_variables=["_spikespace"],
                            template_kwds=template_kwds)
        self.variables.create_clock_variables(self._clock)
        self.add_dependency(source)
        self.add_dependency(target)
        self._enable_group_attributes()
        self.variables["w"].set_value(np.tile(kernel_layout(term.kernel), self.kernel_copies))

    def __len__(self):
        return self.variables["w"].size
