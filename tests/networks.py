"""Small test networks as numpy LayerGraphs, so that the simulation tests run without torch (the
Python 3.12 lane, `make test312`).

Each file in tests/data/ is what `bioconv.graph.from_torch` makes of a seeded torch module (`MODULES`),
saved with `LayerGraph.save`: the simulation tests thus run the very networks they ran when they
built them with torch. On the torch lane, test_convert.py checks that the files still match their
modules; `python tests/networks.py` (needs torch) writes them again.
"""
from pathlib import Path

from bioconv import graph as G

DATA = Path(__file__).resolve().parent / "data"

#: name -> (torch seed, builder of the module from ``torch.nn``, input shape without the batch)
MODULES = {
    # conv (padding) -> ReLU -> max-pool gate -> avg-pool -> linear with bias: every population kind.
    "small_convnet": (3, lambda nn: nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                                  nn.AvgPool2d(2), nn.Flatten(), nn.Linear(12, 4), nn.ReLU(),
                                                  nn.Linear(4, 3)), (1, 8, 8)),
    # the reference ConvNet's kind of layers: no biases
    "bias_free_convnet": (5, lambda nn: nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.ReLU(), nn.MaxPool2d(2),
                                                      nn.Flatten(), nn.Linear(36, 5, bias=False), nn.ReLU(),
                                                      nn.Linear(5, 3, bias=False)), (1, 8, 8)),
    # few code objects, for the CUDA build (nvcc takes ~10 s per object)
    "single_linear": (0, lambda nn: nn.Sequential(nn.Linear(6, 3)), (6,)),
}


def graph(name: str) -> G.LayerGraph:
    """The stored graph of network ``name`` (no torch needed)."""
    return G.load(DATA / f"{name}.npz")


def torch_module(name: str):
    """The seeded torch module that network ``name`` was made from (needs torch)."""
    import torch
    seed, build, _ = MODULES[name]
    torch.manual_seed(seed)
    return build(torch.nn).eval()


if __name__ == "__main__":
    DATA.mkdir(exist_ok=True)
    for name, (_, _, shape) in MODULES.items():
        print(G.from_torch(torch_module(name), shape).save(DATA / f"{name}.npz"))


_SAVED = {}


def saved_small_convnet() -> Path:
    """The small ConvNet converted with the leak bias (linear reset, delta synapses, rate_max 200 Hz,
    as tests/data/small_convnet_v1.bioconv was) and saved by this version of bioconv, once per
    process: a network file whose models are the library's own. (The committed v1 file is kept to test
    that old files load; it records the model files of its day, so a later model file makes it refuse
    to load without on_model_change='warn'.)"""
    if "path" not in _SAVED:
        import atexit
        import shutil
        import tempfile

        import numpy as np

        from bioconv.io.network_file import save
        from bioconv.converter import convert
        snn = convert(graph("small_convnet"), np.random.default_rng(3).random((20, 1, 8, 8)), bias="leak")
        folder = tempfile.mkdtemp(prefix="bioconv-test-net-")
        atexit.register(shutil.rmtree, folder, True)  # one per test process: removed when it exits
        _SAVED["path"] = save(snn, Path(folder) / "small_convnet.bioconv")
    return _SAVED["path"]
