"""`bioconv convert`, `bioconv evaluate` and `bioconv inspect`: a user's own network and data from the
command line.

The flags carry the Python API's names, read from one source: the signature of `SNN.evaluate`, and
for `convert` the parameters each registered coding scheme declares (`bioconv.coding.schemes`). A
flag left out is not passed, so the API applies its own default (shown in ``--help``). A physical
value is a number with its unit, e.g. ``--Cm 100pF``, ``--duration "200 ms"``, ``--dt 0.1*ms``.
"""
from __future__ import annotations

import argparse
import inspect
import re
from pathlib import Path

import numpy as np

#: Parameters whose default is None, by the type of value they take.
_NONE_DEFAULTS = {"duration": "quantity", "dt": "quantity", "steps": int, "encoder": str, "batch": int,
                  "memory_budget": int, "presentations": int, "threads": int}
#: evaluate's parameters the command line sets itself (or that make no sense there).
_EVALUATE_OWN = {"x", "y", "progress", "self"}
_NUMBER_UNIT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*\*?\s*(.*?)\s*$")


def parse_quantity(text: str):
    """'100pF', '200 ms', '0.1*ms' -> a Brian2 quantity; a unit is required (Brian2 checks dimensions later)."""
    from .units import parse_unit
    m = _NUMBER_UNIT.match(str(text))
    if not m or not m.group(2):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number with a unit (e.g. 100pF, '200 ms', 0.1*ms)")
    try:
        return float(m.group(1)) * parse_unit(m.group(2))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: {err}") from None


def _convert_parameters() -> dict:
    """name -> (default, help) of the conversion's parameters: those `convert` declares, and those of
    every registered coding scheme (which `convert` takes through ``**params``)."""
    from . import coding
    from .converter import convert
    params = {n: (p.default, "") for n, p in inspect.signature(convert).parameters.items()
              if p.kind is p.KEYWORD_ONLY and p.default is not p.empty and n not in ("input_shape", "coding")}
    for name in coding.schemes.names():
        for n, spec in coding.schemes[name].PARAMETERS.items():
            default, help_ = params.get(n, (spec.default, ""))
            params[n] = (default, f"{help_}{'; ' if help_ else ''}{name}: {spec.doc}")
    return params


def _evaluate_parameters() -> dict:
    from .converter import SNN
    return {n: (p.default, "SNN.evaluate's") for n, p in inspect.signature(SNN.evaluate).parameters.items()
            if n not in _EVALUATE_OWN and p.default is not p.empty}


def _add_flag(p: argparse.ArgumentParser, name: str, default, help_: str = ""):
    """A flag ``--name`` taking what the API's default shows. Not given, it is not passed on
    (argparse.SUPPRESS): the API's own default applies."""
    flag, shown = f"--{name}", default
    if default is None:  # None: evaluate takes the coding scheme's timing and encoder, and plans the rest itself
        shown = "the coding scheme's" if name in ("duration", "dt", "steps", "encoder") else "chosen by bioconv"
    common = dict(default=argparse.SUPPRESS, dest=name)
    if isinstance(default, bool):  # --name / --no-name: either value can be chosen, whatever the default
        p.add_argument(flag, action=argparse.BooleanOptionalAction, help=f"{help_} (default: {default})", **common)
    elif hasattr(default, "dim") or _NONE_DEFAULTS.get(name) == "quantity":
        p.add_argument(flag, type=parse_quantity, help=f"{help_}; a number with its unit (default: {shown})", **common)
    elif isinstance(default, tuple):
        p.add_argument(flag, type=int, nargs="+", help=f"{help_} (default: {' '.join(map(str, default))})", **common)
    elif isinstance(default, bool | int) or _NONE_DEFAULTS.get(name) is int:
        p.add_argument(flag, type=int, help=f"{help_} (default: {shown})", **common)
    elif isinstance(default, float):
        p.add_argument(flag, type=float, help=f"{help_} (default: {shown})", **common)
    else:  # a number where one is given (normalization='3.5': one scale for every population)
        p.add_argument(flag, type=_text_or_number, help=f"{help_} (default: {shown})", **common)


def _text_or_number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def add_commands(sub) -> None:
    """Register convert, evaluate and inspect on the CLI's subparsers."""
    p = sub.add_parser("convert", help="convert a torch network (factory + weights) and save it as a network file")
    p.add_argument("model", help="package.module:factory or path/to/file.py:factory, called without arguments")
    p.add_argument("--weights", type=Path, help="state dict or {'state_dict': ...} checkpoint, read with "
                                                "torch.load(weights_only=True)")
    p.add_argument("--calibration", type=Path, required=True, help="calibration inputs: .npz (x), .npy, IDX or a "
                                                                           "CIFAR-10 batch file")
    p.add_argument("--limit", type=int, default=None, help="use the first N calibration samples")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="network file to write (e.g. net.bioconv); without it the network is converted and reported, "
                        "not saved")
    from . import coding
    p.add_argument("--coding", choices=coding.schemes.names(), default=argparse.SUPPRESS,
                   help="coding scheme (default: convert's, rate)")
    for name, (default, help_) in _convert_parameters().items():
        _add_flag(p, name, default, help_)
    p.set_defaults(func=_convert)

    p = sub.add_parser("evaluate", help="simulate a saved network on a data set; tables, figures, summary")
    p.add_argument("network", type=Path, help="network file written by bioconv convert or SNN.save")
    p.add_argument("--data", type=Path, required=True, help=".npz (x, y), .npy (x only: agreement with the ANN "
                                                            "only), an MNIST IDX images file or a CIFAR-10 python "
                                                            "batch file (data_batch_N, test_batch)")
    p.add_argument("--limit", type=int, default=None, help="use the first N samples")
    p.add_argument("--out", type=Path, default=Path("results/evaluate"), help="output folder (default: %(default)s)")
    for name, (default, help_) in _evaluate_parameters().items():
        _add_flag(p, name, default, help_)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("inspect", help="populations, sizes, parameters with units, synapses and memory of a network file")
    p.add_argument("network", type=Path)
    p.set_defaults(func=_inspect)


def _api_values(args, names) -> dict:
    """The API parameters the user gave on the command line (the others keep the API's defaults)."""
    return {n: getattr(args, n) for n in names if hasattr(args, n)}


def _convert(args) -> int:
    from . import convert, load_weights
    from .io import datasets
    from .io.factory import load_model

    from .coding import schemes
    from .io.network_file import NetworkFileError, check_savable

    coding = schemes[getattr(args, "coding", "rate")]
    if args.output is not None:  # before any work: a network that cannot be saved is not converted for nothing
        check_savable(coding, f"bioconv convert -o {str(args.output)!r}")
        folder = Path(args.output).expanduser().resolve().parent
        if not folder.is_dir():
            raise NetworkFileError(f"bioconv convert -o {str(args.output)!r}: folder {str(folder)!r} does not exist")
    model = load_model(args.model)
    if args.weights is not None:
        load_weights(model, args.weights)
    cal = datasets.read(args.calibration, args.limit)
    params = _api_values(args, [*_convert_parameters(), "coding"])
    snn = convert(model, cal.x, **params)
    print(snn.table())
    if hasattr(snn.coding, "saturation"):
        dt = _evaluate_parameters()["dt"][0]
        dt = dt if dt is not None else snn.coding.evaluation_defaults()["dt"]
        print(f"\nSaturation at dt = {dt} (fraction of units whose calibration target rate comes within 10 % of the "
              f"highest rate the membrane can fire):")
        for name, frac in snn.saturation(dt).items():
            print(f"  {name:14s} {100 * frac:6.2f} %")
    else:
        print(f"\nSaturation: a rate-coding measure, does not apply to coding {snn.coding.name!r}")
    if args.output is None:
        print("\nnot saved (no -o/--output given)")
        return 0
    path = snn.save(args.output)
    print(f"\nnetwork saved to {path.resolve()} ({path.stat().st_size / 1024:.1f} KiB)")
    return 0


def _evaluate(args) -> int:
    from . import evaluation_report, load
    from .errors import BioconvError
    from .io import datasets

    snn = load(args.network)
    data = datasets.read(args.data, args.limit)
    if tuple(data.x.shape[1:]) != tuple(snn.graph.input_shape):
        raise BioconvError(f"data file {data.source!r}: inputs have shape {tuple(data.x.shape[1:])} per sample; "
                           f"network {str(args.network)!r} expects {tuple(snn.graph.input_shape)}")
    labelled = data.y is not None
    # Without labels, the ANN's own decisions stand in: accuracy is then agreement, and is not reported.
    y = data.y if labelled else snn.graph.forward(np.asarray(data.x, dtype=np.float64))[snn.graph.output] \
        .reshape(len(data.x), -1).argmax(1)
    kwargs = _api_values(args, _evaluate_parameters())
    res = snn.evaluate(data.x, y, progress=True, **kwargs)
    files = evaluation_report.write(res, args.out, network=str(args.network), data=data.source, labelled=labelled)
    print(files["summary_md"].read_text())
    print(f"results in {Path(args.out).resolve()}:")
    for role, path in files.items():
        print(f"  {role:15s} {path.name}")
    return 0


def _inspect(args) -> int:
    from . import load
    from .mapping import MappedNetwork
    from .simulate.runner import memory_estimate, network_size, stored_size

    snn = load(args.network)
    print(f"{args.network}: input shape {snn.graph.input_shape}, coding {snn.coding.name} {snn.coding.params()}\n")
    print(snn.table())
    settings = ", ".join(f"{k}={v}" for k, v in snn.conversion.items())
    if not isinstance(snn.mapped, MappedNetwork):  # TTFS's or CSS's layers, which their scheme simulates
        layers = snn.mapped.layers
        synapses = sum(len(q.i) for p in layers for q in p.projections)
        print(f"\n{sum(p.size for p in layers[1:]):,} neurons (input excluded), {synapses:,} synapses per copy; "
              f"simulated by coding {snn.coding.name!r} itself")
        print(f"converted with: {settings}")
        return 0
    neurons, synapses = network_size(snn.mapped)
    kernel = stored_size(snn.mapped, "shared")[2]
    mib = {conv: (memory_estimate(snn.mapped, 2, conv) - memory_estimate(snn.mapped, 1, conv)) / 2 ** 20
           for conv in ("shared", "unrolled")}
    print(f"\n{neurons:,} neurons, {synapses:,} synapses per copy (unrolled); memory per copy simulated: about "
          f"{mib['shared']:.2f} MiB with shared convolution kernels ({kernel:,} kernel values, stored once), "
          f"{mib['unrolled']:.2f} MiB unrolled (bioconv.simulate.runner.memory_estimate)")
    print(f"converted with: {settings}")
    return 0
