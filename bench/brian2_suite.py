"""Brian2's own standalone test suite on bioconv's device (issue 10's acceptance check).

Runs ``brian2.test([], test_codegen_independent=False, test_standalone="bioconv_standalone", ...)``
as brian2cuda tests its device: Brian2's standalone-compatible tests (single and multiple run
statements) with every ``devices.bioconv_standalone.*`` optimization on (their defaults), and, as
the third phase, Brian2's cpp_standalone-specific tests with the name ``cpp_standalone`` pointing
at bioconv's device (those tests call ``set_device("cpp_standalone")`` themselves).

    # brian2 2.7.1 (its conftest needs pytest < 8: a separate environment, `.venv-b2suite`)
    python3.11 -m venv .venv-b2suite && .venv-b2suite/bin/pip install -e . "pytest<8" pytest-xdist
    .venv-b2suite/bin/python bench/brian2_suite.py
    # brian2 2.10.1
    .venv312/bin/python bench/brian2_suite.py

Options: ``--device cpp_standalone`` runs the plain Brian2 baseline; ``--no-optimizations`` runs
bioconv's device with every optimization switched off (triage: a test that fails with them and
passes without them is a bug of the device); ``-k EXPR`` selects tests (pytest's -k). One process (the
cpp_standalone alias and the checks live in it). Long (10-30 min on 2 cores), so not part of ``make test``.

Writes bench/results/brian2_suite_<brian2 version>[_<variant>].md: passed/failed/skipped, wall time,
versions, failing tests, and what the optimizations changed in the projects built (so a pass is
known to have run with them).
"""
from __future__ import annotations

import argparse
import datetime
import inspect
import os
import sys
import time
from collections import Counter, defaultdict
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

import brian2  # noqa: E402
import pytest  # noqa: E402
from brian2 import prefs  # noqa: E402
from brian2.devices.device import all_devices, get_device  # noqa: E402

import bioconv.simulate.standalone  # noqa: E402,F401  (registers the device and its preferences)
from bioconv.simulate.standalone.device import NAME, BioconvStandaloneDevice  # noqa: E402

CPP_SPECIFIC_MARK = NAME  # the marker brian2.test selects for the device-specific phase


def bool_prefs() -> list[str]:
    """The device's on/off preferences (``compile_units`` is a number)."""
    return sorted(name.split(".")[-1] for name, value in prefs.items()
                  if name.startswith(f"devices.{NAME}.") and isinstance(value, bool))


class Collector:
    """A pytest plugin handed to each of brian2.test's pytest sessions: outcomes per test, the
    device and the bioconv preferences each test ran with."""

    def __init__(self, device: str, expected_prefs: dict, alias_cpp: bool):
        self.device = device
        self.expected_prefs = expected_prefs
        self.alias_cpp = alias_cpp
        self.phase = ""
        self.outcomes: dict[str, str] = {}
        self.phase_of: dict[str, str] = {}
        self.skip_reasons: dict[str, str] = {}
        self.phase_times: list[tuple[str, float, int]] = []
        self.wrong_device: list[str] = []
        self.wrong_prefs: list[str] = []
        self.current = ""

    def pytest_configure(self, config):
        config.addinivalue_line("markers", f"{CPP_SPECIFIC_MARK}: cpp_standalone-specific tests run on bioconv's device")

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items):
        if self.alias_cpp:  # before -m deselects: brian2.test's device-specific phase selects this marker
            for item in items:
                if item.get_closest_marker("cpp_standalone") is not None:
                    item.add_marker(CPP_SPECIFIC_MARK)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self, item):
        self.current = item.nodeid
        device = get_device()
        expected = all_devices[self.device]
        if device is not expected and not (self.alias_cpp and device is all_devices.get("cpp_standalone")):
            self.wrong_device.append(f"{item.nodeid} ({type(device).__name__})")
        if self.device == NAME:
            actual = {k: prefs[f"devices.{NAME}.{k}"] for k in self.expected_prefs}
            if actual != self.expected_prefs:
                self.wrong_prefs.append(f"{item.nodeid}: {actual}")

    def pytest_runtest_logreport(self, report):
        key = f"{report.nodeid}"
        if report.when == "call":
            outcome = "skipped" if report.skipped else report.outcome
        elif report.failed:
            outcome = "error"
        elif report.skipped and report.when == "setup":
            outcome = "skipped"
        else:
            return
        if self.outcomes.get(key) in ("failed", "error"):
            return
        self.outcomes[key] = outcome
        self.phase_of[key] = self.phase
        if outcome == "skipped":
            longrepr = report.longrepr
            self.skip_reasons[key] = str(longrepr[-1] if isinstance(longrepr, tuple) else longrepr).strip()


def patch_pytest_main(collector: Collector, phase_names: list[str]):
    """brian2.test runs one pytest session per phase: add the collector to each and time it."""
    original = pytest.main
    counter = iter(range(10 ** 6))

    def main(args=None, plugins=None):
        k = next(counter)
        collector.phase = phase_names[k] if k < len(phase_names) else f"phase {k + 1}"
        print(f"\n==== {collector.phase}", flush=True)
        started = time.perf_counter()
        rc = original(args, plugins=list(plugins or []) + [collector])
        collector.phase_times.append((collector.phase, time.perf_counter() - started, int(rc)))
        return rc

    pytest.main = main
    return original


def record_optimizations():
    """Sum of `BioconvStandaloneDevice.optimizations` over the projects built (per test)."""
    totals, per_test = Counter(), {}
    original = BioconvStandaloneDevice.generate_makefile

    def generate_makefile(self, *args, **kwds):
        result = original(self, *args, **kwds)
        totals.update(self.optimizations)
        totals["projects"] += 1
        per_test[collector_ref[0].current] = dict(self.optimizations)
        return result

    BioconvStandaloneDevice.generate_makefile = generate_makefile
    return totals, per_test


collector_ref: list[Collector] = []


def check_pytest():
    """brian2 2.7.1's conftest hooks take py.path arguments (pytest_ignore_collect(path, ...)), which
    pytest 8 no longer passes the same way: refuse early with the fix instead of a collection error."""
    import brian2.conftest as conftest
    params = inspect.signature(conftest.pytest_ignore_collect).parameters
    if "path" in params and int(pytest.__version__.split(".")[0]) >= 8:
        sys.exit(f"brian2 {brian2.__version__}'s conftest needs pytest < 8 (this environment has {pytest.__version__}): "
                 f"use a separate environment, e.g.\n  python3.11 -m venv .venv-b2suite && .venv-b2suite/bin/pip "
                 f"install -e . 'pytest<8' pytest-xdist\n  .venv-b2suite/bin/python bench/brian2_suite.py")


def machine() -> str:
    """The shared machine description (bench/_report.py), with the load at the start of the run."""
    from _report import machine as described
    load = f", load average at start {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return described() + load


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=NAME, choices=[NAME, "cpp_standalone"],
                        help=f"device to test (default {NAME}; cpp_standalone: Brian2's plain baseline)")
    parser.add_argument("--no-optimizations", action="store_true",
                        help=f"switch every devices.{NAME}.* optimization off (triage)")
    parser.add_argument("--no-cpp-specific", action="store_true",
                        help="skip Brian2's cpp_standalone-specific tests on bioconv's device")
    parser.add_argument("-k", dest="keyword", default=None, help="pytest -k expression: run only these tests")
    parser.add_argument("--long", action="store_true", help="also the tests Brian2 marks long")
    parser.add_argument("--output", default=None, help="Markdown result (default bench/results/brian2_suite_<version>[_variant].md)")
    parser.add_argument("pytest_args", nargs="*", help="further pytest arguments (after --)")
    args = parser.parse_args(argv)
    if args.device != NAME and args.no_optimizations:
        parser.error("--no-optimizations only applies to bioconv's device")
    check_pytest()

    variant = ("_cpp_standalone" if args.device != NAME else "") + ("_no_optimizations" if args.no_optimizations else "")
    output = Path(args.output) if args.output else RESULTS / f"brian2_suite_{brian2.__version__}{variant}.md"
    if args.keyword and not args.output:
        output = output.with_name(output.stem + "_selection.md")

    # Defaults for every preference (brian2cuda's way: brian2.test's own reset would switch the
    # optimizations back on), then this run's optimization settings. brian2.test hands the
    # preferences to every test (conftest), so they hold in each one; Collector checks they did.
    stored_user_prefs = prefs.as_file
    prefs.read_preference_file(StringIO(prefs.defaults_as_file))
    switches = bool_prefs()
    expected = {name: (not args.no_optimizations) for name in switches}
    for name, value in expected.items():
        prefs[f"devices.{NAME}.{name}"] = value

    alias_cpp = args.device == NAME and not args.no_cpp_specific
    collector = Collector(args.device, expected, alias_cpp)
    collector_ref.append(collector)
    phases = ["standalone-compatible tests (single run statement)",
              "standalone-compatible tests (multiple run statements)",
              "cpp_standalone-specific tests" + (f" on {NAME}" if args.device == NAME else "")]
    original_main = patch_pytest_main(collector, phases)
    totals, per_test = record_optimizations()
    original_cpp = all_devices.get("cpp_standalone")
    if alias_cpp:  # those tests call set_device("cpp_standalone") themselves
        all_devices["cpp_standalone"] = all_devices[NAME]

    pytest_args = ["-rfE", "-p", "no:cacheprovider"] + list(args.pytest_args)
    if args.keyword:
        pytest_args += ["-k", args.keyword]
    test_kwds = dict(long_tests=args.long, test_codegen_independent=False, test_standalone=args.device,
                     test_openmp=False, test_in_parallel=[],
                     reset_preferences=False, fail_for_not_implemented=True, additional_args=pytest_args)
    python = Path(sys.executable)
    python = python.relative_to(ROOT) if python.is_relative_to(ROOT) else python
    command = " ".join([str(python), os.path.relpath(Path(sys.argv[0]).resolve(), ROOT)]
                       + list(argv if argv is not None else sys.argv[1:]))
    started = time.perf_counter()
    try:
        success = brian2.test([], **test_kwds)
    finally:
        wall = time.perf_counter() - started
        pytest.main = original_main
        if original_cpp is not None:
            all_devices["cpp_standalone"] = original_cpp
        prefs.read_preference_file(StringIO(stored_user_prefs))

    counts = Counter(collector.outcomes.values())
    failing = sorted(k for k, v in collector.outcomes.items() if v in ("failed", "error"))
    n_fail = counts["failed"] + counts["error"]
    lines = [f"# Brian2's standalone test suite on `{args.device}`"
             + (" (every optimization off)" if args.no_optimizations else
                " (every optimization on)" if args.device == NAME else " (plain Brian2 baseline)"),
             "",
             f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
             f"- brian2 {brian2.__version__}, numpy {__import__('numpy').__version__}, pytest {pytest.__version__}",
             f"- machine: {machine()}",
             f"- command: `{command}`",
             f"- call: `brian2.test([], {', '.join(f'{k}={v!r}' for k, v in test_kwds.items())})`",
             ]
    if args.device == NAME:
        lines.append(f"- preferences: " + ", ".join(f"`{k}`={v}" for k, v in expected.items())
                     + f"; `compile_units`={prefs[f'devices.{NAME}.compile_units']}")
    lines += ["",
              f"**{counts['passed']} passed, {n_fail} failed, {counts['skipped']} skipped** "
              f"in {wall:.0f} s ({wall / 60:.1f} min); brian2.test returned {success}", "",
              "| phase | tests | passed | failed | skipped | wall s | pytest exit |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for phase, seconds, rc in collector.phase_times:
        c = Counter(v for k, v in collector.outcomes.items() if collector.phase_of[k] == phase)
        lines.append(f"| {phase} | {sum(c.values())} | {c['passed']} | {c['failed'] + c['error']} | {c['skipped']} "
                     f"| {seconds:.0f} | {rc} |")
    if args.device == NAME:
        lines += ["", f"What the optimizations changed, summed over the {totals['projects']} projects built "
                      f"(`{NAME}.optimizations`):", ""]
        lines += [f"- {k}: {v}" for k, v in sorted(totals.items()) if k != "projects"]
        lines += [f"- tests with a blocked threshold: {sum(1 for o in per_test.values() if o.get('thresholds_blocked'))}; "
                  f"with a direct pathway: {sum(1 for o in per_test.values() if o.get('pathways_direct'))}; "
                  f"with merged code objects: {sum(1 for o in per_test.values() if o.get('code_objects_merged'))}"]
        if collector.wrong_prefs:
            lines += ["", "Tests that ran with other optimization settings than asked:", ""]
            lines += [f"- {t}" for t in collector.wrong_prefs]
    if collector.wrong_device:
        lines += ["", "Tests that started on another device than the one tested (they set their own):", ""]
        lines += [f"- `{t}`" for t in collector.wrong_device]
    lines += ["", "Failing tests:" if failing else "No failing test.", ""]
    lines += [f"- `{t}` ({collector.outcomes[t]}, {collector.phase_of[t]})" for t in failing]
    if collector.skip_reasons:
        lines += ["", "Skipped tests:", ""]
        lines += [f"- `{t}`: {reason}" for t, reason in sorted(collector.skip_reasons.items())]
    text = "\n".join(lines) + "\n"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print("\n" + text + f"\nwritten to {output}")
    return 0 if success and not failing else 1


if __name__ == "__main__":
    sys.exit(main())
