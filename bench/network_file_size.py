"""Network file size with convolutions kept as kernel + geometry (format version 2, form 'conv')
against every projection unrolled into synapses (form 'sparse', what format version 1 stored), on a
CIFAR-shaped convnet of random weights (3x32x32 -> conv 32 -> conv 32 -> avg pool 2 -> conv 64 ->
linear 10, 3x3 kernels, padding 1). Save and load times of the compact file; the unrolled file is
written with `bioconv.io.projections.encode` replaced by the 'sparse' form.

    .venv/bin/python bench/network_file_size.py      # prints the table, writes bench/results/network_file_size.md
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

import bioconv
from bioconv import graph as G
from bioconv.converter import convert
from bioconv.io import projections


def main():
    rng = np.random.default_rng(0)
    g = G.sequential((3, 32, 32), [
        ("conv2d", dict(weight=rng.normal(0, 0.2, (32, 3, 3, 3)), bias=rng.normal(0, 0.01, 32), padding=(1, 1))),
        "relu", ("conv2d", dict(weight=rng.normal(0, 0.1, (32, 32, 3, 3)), padding=(1, 1))), "relu",
        ("avgpool2d", dict(kernel=(2, 2))), ("conv2d", dict(weight=rng.normal(0, 0.1, (64, 32, 3, 3)), padding=(1, 1))),
        "relu", "flatten", ("linear", dict(weight=rng.normal(0, 0.01, (10, 64 * 16 * 16))))])
    snn = convert(g, rng.random((16, 3, 32, 32)))
    n_syn = sum(q.n_synapses for p in snn.mapped.populations for q in p.projections)
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        compact = snn.save(Path(d) / "compact.bioconv")
        t_save = time.perf_counter() - t
        t = time.perf_counter()
        bioconv.load(compact)
        t_load = time.perf_counter() - t
        encode = projections.encode
        projections.encode = lambda q, w, member: dict(source=q.source, unshared=q.unshared, form="sparse",
                                                       **projections._encode_ijw(q.i, q.j, q.w, w, member))
        try:
            unrolled = snn.save(Path(d) / "unrolled.bioconv")
        finally:
            projections.encode = encode
        sizes = os.path.getsize(compact) / 2 ** 20, os.path.getsize(unrolled) / 2 ** 20
    table = ("| synapses (unrolled) | compact file (MiB) | unrolled file (MiB) | compact save (s) | compact load (s) |\n"
             "|---|---|---|---|---|\n"
             f"| {n_syn:,} | {sizes[0]:.2f} | {sizes[1]:.2f} | {t_save:.2f} | {t_load:.2f} |\n")
    print(table)
    out = Path(__file__).resolve().parent / "results" / "network_file_size.md"
    out.write_text("# Network file size: convolutions as kernels (format 2) vs unrolled\n\n"
                   "`python bench/network_file_size.py` (see its docstring for the network). Files are zip "
                   "(deflate) archives; loading the compact file does not unroll its convolutions. Most of the compact file is the graph (the ANN weights, `graph.npz`) and the linear layer's 163,840 synapses.\n\n" + table)


if __name__ == "__main__":
    main()
