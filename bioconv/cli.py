"""The `bioconv` command line: `bioconv models`, `bioconv study NAME`, `bioconv demo`, `bioconv sweep CONFIG`,
`bioconv cache`."""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path


def _models(args) -> int:
    from . import models
    for name in models.available(args.kind):
        m = models.load(name)
        print(f"{name:20s} {m.kind:8s} {m.description}")
    return 0


def _study(args) -> int:
    from .study import run_study
    out = run_study(args.name, full=args.full, out=args.out, device=args.device, config=args.config,
                    threads=args.threads)
    print(f"\n{args.name}: results in {out.resolve()}")
    print(f"  summary: {(out / 'summary.md').resolve()}")
    for png in sorted(out.glob("*.png")):
        print(f"  figure:  {png.resolve()}")
    return 0


#: The studies the main job (`bioconv demo`, `make demo`) runs, quick settings.
DEMO_STUDIES = ("rate_validation", "conversion_error", "ttfs", "coding_schemes")


def _demo(args) -> int:
    """The main job: the studies of `DEMO_STUDIES` with their quick settings, then their summaries."""
    root = args.out or Path("results")
    args.config = None
    for name in DEMO_STUDIES:
        args.name, args.out = name, root / name
        _study(args)
    for name in DEMO_STUDIES:
        print("\n" + (root / name / "summary.md").read_text())
    print(f"Results of the main job are in {root.resolve()}")
    return 0


def _cache(args) -> int:
    """The compiled-project cache: list its entries, clear it, or print its folder."""
    from .simulate import cache
    if args.action == "path":
        print(cache.cache_root())
        return 0
    if args.action == "clear":
        print(f"removed {cache.clear()} compiled project(s) from {cache.cache_root()}")
        return 0
    entries = cache.entries()
    state = "on" if cache.enabled() else "off ($BIOCONV_PROJECT_CACHE)"
    print(f"{cache.cache_root()}: {len(entries)} compiled project(s), "
          f"{sum(e.size for e in entries) / 2 ** 20:.1f} MiB of {cache.max_bytes() / 2 ** 20:.0f} MiB; cache {state}")
    for e in reversed(entries):  # most recently used first
        m = e.manifest.get("summary", {})
        print(f"  {e.key}  {e.size / 2 ** 20:7.1f} MiB  last used {time.strftime('%Y-%m-%d %H:%M', time.localtime(e.last_used))}"
              f"  {m}")
    return 0


def _sweep(args) -> int:
    """A parameter sweep from a TOML config, on a Dask LocalCluster or an existing scheduler; a re-run
    (or --resume) continues where the last one stopped."""
    from . import sweep
    try:
        spec = sweep.Spec.from_toml(args.config)
    except sweep.SweepSpecError as err:
        print(f"bioconv sweep: {err}", file=sys.stderr)
        return 2
    out = args.out or Path("results") / spec.name
    if args.resume and not (out / sweep.store.ROWS).is_dir():
        print(f"bioconv sweep --resume: no sweep store at {out.resolve()}", file=sys.stderr)
        return 2
    print(f"sweep {spec.name!r}: {len(spec)} point(s), level {spec.level!r}, store {out.resolve()}")
    try:
        df = sweep.run(spec, out, scheduler=args.scheduler, workers=args.workers,
                       allow_other_spec=args.allow_other_spec)
    except (sweep.SchedulerError, sweep.store.StoreSpecError) as err:
        print(f"bioconv sweep: {err}", file=sys.stderr)
        return 2
    errors = df[df.status != "ok"]
    print(f"sweep {spec.name!r}: {len(df) - len(errors)} point(s) done, {len(errors)} error row(s); "
          f"load with bioconv.sweep.load({str(out.resolve())!r})")
    for msg, n in errors.error.value_counts().head(5).items():
        print(f"  {n} x {msg[:300]}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bioconv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("models", help="list the models in equations/")
    p.add_argument("--kind", choices=["neuron", "synapse"])
    p.set_defaults(func=_models)
    for name, fn, help_ in [("study", _study, "run a study from studies/"),
                            ("demo", _demo, "the main job: the rate_validation, conversion_error, ttfs and "
                                            "coding_schemes studies (quick), summaries")]:
        p = sub.add_parser(name, help=help_)
        if name == "study":
            p.add_argument("name", help="study name, e.g. rate_validation")
        p.add_argument("--full", action="store_true", help="the full sweep instead of the quick settings")
        p.add_argument("--out", type=Path, default=None,
                       help="output folder (default results/NAME; for demo, the parent of the studies' folders)")
        if name == "study":
            p.add_argument("--config", type=Path, default=None,
                           help="settings file (default studies/NAME/config.toml)")
        p.add_argument("--device", choices=["cpp", "runtime", "cuda"], default="cpp",
                       help="Brian2 device: cpp (cpp_standalone with OpenMP, default), runtime (numpy, slow) or "
                            "cuda (brian2cuda; needs nvcc, and a GPU to run)")
        p.add_argument("--threads", type=int, default=None,
                       help="cores for the cpp device: that many runs at once, then OpenMP threads for the cores "
                            "left (default: all available cores, or $BIOCONV_THREADS)")
        p.set_defaults(func=fn)
    p = sub.add_parser("sweep", help="a parameter sweep from a TOML config, on Dask (resumable)")
    p.add_argument("config", type=Path, help="sweep config, e.g. studies/sweep_membrane/config.toml")
    p.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler (default: a LocalCluster)")
    p.add_argument("--workers", type=int, default=None,
                   help="LocalCluster workers, one thread each (default: the available cores)")
    p.add_argument("--out", type=Path, default=None, help="results store (default results/NAME)")
    p.add_argument("--resume", action="store_true",
                   help="continue the sweep in an existing store (a plain re-run continues too)")
    p.add_argument("--allow-other-spec", action="store_true",
                   help="write into a store that holds another spec's rows (refused by default)")
    p.set_defaults(func=_sweep)
    p = sub.add_parser("cache", help="the cache of compiled projects: list, clear, path")
    p.add_argument("action", choices=["list", "clear", "path"], nargs="?", default="list")
    p.set_defaults(func=_cache)
    from .cli_network import add_commands
    add_commands(sub)  # convert, evaluate, inspect: a user's own network and data
    args = parser.parse_args(argv)
    # Brian2 reports each integration-method choice at INFO; keep the console for results.
    logging.getLogger("brian2").setLevel(logging.WARNING)
    from brian2 import prefs
    from brian2.utils.logger import BrianLogger
    prefs.logging.console_log_level = "WARNING"
    # Brian2 warns on every OpenMP build that its OpenMP code is "not yet well tested"; bioconv's
    # tests check that counts do not depend on the number of threads (tests/test_fast_simulation.py).
    BrianLogger.suppress_name("openmp")
    from .errors import BioconvError
    try:
        return args.func(args)
    except BioconvError as err:  # the user's input is at fault and the message names it: no traceback
        print(f"bioconv {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
