"""Compile once, run many: one build of a converted network for B samples, run again for every batch.

On the standalone devices (``cpp``, ``cuda``) the network is generated and compiled once; each batch
then runs the same binary with its inputs passed as ``run_args`` (Brian2 >= 2.6): the input
group's rates, or the first layer's bias currents for the ``current`` encoder. Nothing else
changes between batches, so nothing is recompiled. On ``runtime`` the network is built once and
rewound with ``store``/``restore`` between batches.

On the standalone devices a run can also present K samples one after another to each of the B
copies (``presentations=K``), every state reset between them: the binary then starts, loads its
connectivity and writes its results once per K*B samples instead of once per B, which is most of the
cost of a run for a large network. The inputs of all K presentations (rates, or the first layers'
currents) travel as one TimedArray per population.

On ``cpp``, `CompiledNetwork.run_many` runs several batches at once as separate processes of the
same binary (Brian2 applies synaptic events on one thread even with OpenMP, so processes are what
keeps every core busy).

A last, smaller batch is padded with silent samples (zero rates), whose results are dropped.
"""
from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections import deque
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from brian2 import Network, Quantity, Synapses, get_device, prefs, seed as brian_seed
from brian2.core.clocks import Clock

from ..coding.encoders import encoders
from ..conv_geometry import KernelTerm
from ..mapping import MappedNetwork
from . import cache, limits
from .project import Results, result_spec, run_arg_spec, shape_parts, write_run_args
from .devices import available_cores, check_device, simulation_device
from .network import (_safe, build, check_input_copies, conv_form, input_values, kernel_copies, parameter_values,
                      pathway_parts, samples_per_presentation, set_inputs, weight_values)
from . import sweepable as sw

logger = logging.getLogger(__name__)

# Peak resident memory of a run of a standalone build's binary, per stored synapse (a Synapses'
# indices, weight, delay, spike-queue entry), per neuron (state variables, spike space, counters, its
# share of the monitors) and per value of a shared kernel (the array and Brian2's static copy it is
# loaded from). Measured as the slope of the binary's peak memory (VmHWM) between builds of 2 and 8
# copies of the MNIST ConvNet (2 presentations): 58.9 bytes per synapse (unrolled and shared forms
# together) and 99 per neuron (bench/conversion_throughput.py --memory; README, "Fast simulation").
# The Python side of a build holds about as much again while building; it is released before the
# runs start, which hold the binaries' memory once per run in flight. `memory_estimate` combines them.
BYTES_PER_SYNAPSE = 60
BYTES_PER_NEURON = 100
BYTES_PER_KERNEL_VALUE = 16


@dataclass
class BatchOutput:
    """What one batch produced. Counts per population (B, size); output spikes as (sample, unit, t)."""

    counts: dict[str, np.ndarray]
    out_sample: np.ndarray
    out_unit: np.ndarray
    out_t: np.ndarray          # seconds
    out_v: np.ndarray | None   # (B, n_out, n_recorded) membrane potential samples, volts (potential readout)
    final_v: np.ndarray | None  # (B, n_out) membrane potential at the end of the run


@dataclass
class _Launch:
    """A run of the cpp binary in progress."""

    proc: subprocess.Popen
    results: Path
    b: int
    stdout: IO
    started: float  # time.monotonic() at the launch: the run's wall-time limit counts from here


def network_size(net: MappedNetwork) -> tuple[int, int]:
    """(neurons, synapses) of one copy of ``net``, synapses as the unrolled form connects them
    (counted from the geometry where a kernel makes a projection: nothing is unrolled)."""
    neurons = sum(p.size for p in net.populations)
    syn = 0
    for p in net.populations[1:]:
        if p.kind == "maxpool":
            syn += int(np.sum(p.pool_groups >= 0))
            continue
        syn += sum(q.n_synapses for q in p.projections)
        if p.bias_weight is not None:
            syn += int(np.count_nonzero(np.asarray(p.bias_weight)))
    return neurons, syn


def stored_size(net: MappedNetwork, conv: str = "unrolled") -> tuple[int, int, int]:
    """(neurons, stored synapses, kernel values) of one copy of ``net`` built with convolutions in
    form ``conv``: the synapses its Synapses objects hold per copy (a shared pathway holds none), and
    the values of its shared kernels (`memory_estimate` says how many copies of them a build holds)."""
    neurons = sum(p.size for p in net.populations)
    syn = kernel = 0
    for p in net.populations[1:]:
        if p.kind == "maxpool":
            syn += int(np.sum(p.pool_groups >= 0))
            continue
        for q in p.projections:
            for _, part in pathway_parts(net, q, "", conv):
                if isinstance(part, KernelTerm):
                    kernel += int(np.prod(part.geometry.kernel_shape))
                else:
                    syn += part.n_synapses
        if p.bias_weight is not None:
            syn += int(np.count_nonzero(np.asarray(p.bias_weight)))
    return neurons, syn, kernel


def memory_estimate(net: MappedNetwork, n_copies: int, conv: str = "unrolled", sweepable=()) -> int:
    """Estimated peak memory (bytes) of a standalone build of ``n_copies`` copies of ``net`` with
    convolutions in form ``conv``: per copy, its neurons and stored synapses; once (or once per copy,
    `kernel_copies`), the shared kernels."""
    neurons, syn, kernel = stored_size(net, conv)
    per_copy = BYTES_PER_NEURON * neurons + BYTES_PER_SYNAPSE * syn
    return int(per_copy * n_copies + BYTES_PER_KERNEL_VALUE * kernel * kernel_copies(n_copies, sweepable))


# cpp_standalone runs objects of two clocks in the same step only if their times differ by at most
# 1e-14 s (absolute; brianlib's network.cpp). The resets between presentations run on a clock of
# dt = duration, the network on dt: their times k*duration and (k*steps)*dt drift apart in the last
# bits as k grows, and a reset would then come one step late.
_CLOCK_EPSILON = 1e-14


def aligned_presentations(duration, dt, limit: int = 100_000, sample_every=None) -> int:
    """The largest K <= ``limit`` for which every presentation start k*duration (k < K) falls in the
    same scheduling step as step k*steps of the network's clock, in double precision.

    ``sample_every``: a membrane monitor's interval, which divides ``duration`` (potential readout).
    Its j-th sample in presentation k must then see the state of the same step, counted from the
    presentation's start, as its j-th sample in the first presentation."""
    T, step = float(duration), float(dt)
    steps = int(round(T / step))
    k = np.arange(int(limit), dtype=np.int64)
    bad = np.abs(k * T - (k * steps) * step) > _CLOCK_EPSILON
    if sample_every is not None:
        every = float(sample_every)
        n = max(1, int(round(T / every)))
        j = np.arange(1, n, dtype=np.int64)  # the sample at a presentation's start is not read
        first = _step_seen(j * every, step)
        chunk = max(1, 2 ** 20 // n)  # presentations per pass: K x n samples can be many
        for lo in range(0, len(k), chunk):
            kk = k[lo:lo + chunk]
            seen = _step_seen((kk[:, None] * n + j[None, :]) * every, step) - kk[:, None] * steps
            bad[kk] |= np.any(seen != first[None, :], axis=1)
    bad = np.flatnonzero(bad)
    return int(bad[0]) if len(bad) else int(limit)


def _step_seen(t: np.ndarray, step: float) -> np.ndarray:
    """The network step whose start state a monitor sampling at times ``t`` (when="start") records:
    the first step s with s*step >= t - epsilon (cpp_standalone runs clocks within epsilon together,
    and a clock ahead of the network's by more runs after that step)."""
    s = np.maximum(np.floor(t / step).astype(np.int64) - 1, 0)
    for _ in range(3):  # from at most two steps below
        s += s * step < t - _CLOCK_EPSILON
    return s


def run_steps(duration, dt) -> int:
    """Steps that Brian2 simulates in a run of ``duration``: a whole number of steps up to its
    rounding tolerance (Clock.epsilon_dt), else rounded up."""
    T, step = float(duration), float(dt)
    n = int(np.round(T / step))
    return n if abs(n * step - T) <= Clock.epsilon_dt * step else int(np.ceil(T / step))


def default_memory_budget() -> int:
    """A quarter of the machine's memory, at most 8 GiB."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2 ** 30
    return int(min(8 * 2 ** 30, total // 4))


def batch_for_budget(net: MappedNetwork, n_samples: int, memory_budget: int | None = None, conv: str = "unrolled",
                     sweepable=()) -> int:
    """The largest number of disjoint copies whose estimated memory (`memory_estimate`, convolutions
    in form ``conv``) fits ``memory_budget`` bytes (default `default_memory_budget`), at least 1 and
    at most ``n_samples``."""
    budget = default_memory_budget() if memory_budget is None else int(memory_budget)
    one, two = memory_estimate(net, 1, conv, sweepable), memory_estimate(net, 2, conv, sweepable)
    per_copy, fixed = max(two - one, 1), max(2 * one - two, 0)
    return int(max(1, min(n_samples, (budget - fixed) // per_copy)))


# Released arrays above this size are worth a full garbage collection (which takes 0.6-1 s in a
# process that has imported torch and built a network: millions of tracked objects).
_COLLECT_ABOVE_BYTES = 256 * 2 ** 20


def _release_build_memory(dev):
    """After a standalone build, the connectivity lives in the project's files; drop Brian2's Python-side
    copies (static arrays, cached synapse values), which are as large as the binary's own."""
    released = sum(getattr(a, "nbytes", 0) for a in dev.static_arrays.values())
    dev.static_arrays.clear()
    for var in list(dev.array_cache):
        if isinstance(getattr(var, "owner", None), Synapses):
            released += getattr(dev.array_cache[var], "nbytes", 0)
            dev.array_cache[var] = None
    # Reference counting frees the arrays themselves; a full collection also frees those held in
    # reference cycles, and pays for itself only when they are large.
    if released > _COLLECT_ABOVE_BYTES:
        gc.collect()


_device_held = False  # an open CompiledNetwork holds Brian2's device


def _claim_device():
    """Brian2's device is process-global: one CompiledNetwork at a time, or the second would reset the
    first one's device under it."""
    global _device_held
    if _device_held:
        raise RuntimeError("another CompiledNetwork is open in this process; close it first "
                           "(Brian2's device is process-global)")
    _device_held = True


class CompiledNetwork:
    """``net`` built once for ``n_copies`` samples on ``device``; `run` presents one batch.

    Use as a context manager (or call `close`): it holds Brian2's device and its build folder.
    ``seed`` seeds Brian2's random numbers (Poisson inputs); on ``cpp`` each launch sets it, so one
    compiled project serves every seed; on ``cuda`` it is part of the build. ``presentations``: samples shown one
    after another to each copy per run (standalone devices; with the potential readout,
    ``record_output_every`` must divide ``duration``). ``run_limit``: wall-time limit of each run
    of the cpp binary in seconds (None: `limits.default_limit`, $BIOCONV_RUN_LIMIT); a run past it
    is killed and raises `RunTimeLimitError`. ``sweepable``: names of `sweepable.SWEEPABLE` that
    every run may set (``run(..., params=...)``), per copy, without recompiling: the build keeps the
    variables they move per neuron (`network.build`); the names are part of the cache key, the
    values are not. ``input_copies``: C, a divisor of ``n_copies``: copy ``b`` shows the samples of
    copy ``b % C`` (every run must give them the same inputs), and the copies share C copies of the
    input layer (`network.build`'s ``input_copies``; where they cannot, a `ParameterError` says why).
    """

    def __init__(self, net: MappedNetwork, n_copies: int, *, duration, dt, encoder: str = "regular",
                 device: str = "cpp", seed: int = 0, threads: int | None = None, float32: bool = False,
                 record_output_every=None, directory=None, cuda: dict | None = None, presentations: int = 1,
                 run_limit: float | None = None, sweepable=(), conv: str = "shared", input_copies: int | None = None):
        self.net, self.B, self.encoder, self.seed = net, int(n_copies), encoder, seed
        self._encoder = encoders[encoder]  # an unknown name fails here, naming the registered ones
        self.K = int(presentations)
        self.sweepable = sw.check_names(sweepable, "CompiledNetwork")
        sw.check_homeostatic(net, self.sweepable, "CompiledNetwork")  # before any compile
        self._point_cache: dict = {}
        self.run_limit = limits.check_limit(run_limit, "CompiledNetwork: run_limit")
        if self.K > 1 and device == "runtime":
            raise ValueError("presentations > 1 needs a standalone device ('cpp' or 'cuda')")
        self.steps = int(round(float(duration / dt)))
        if self.K > 1 and abs(self.steps * float(dt) - float(duration)) > 1e-9 * float(duration):
            raise ValueError(f"presentations > 1 needs a duration that is a whole number of steps ({duration}, {dt})")
        self.dt = float(dt)
        sample_every = record_output_every if net.readout == "potential" else None
        if self.K > 1 and sample_every is not None:
            samples_per_presentation(duration, sample_every)  # refuses samples that straddle presentations
        aligned = aligned_presentations(duration, dt, self.K, sample_every) if self.K > 1 else 1
        if self.K > aligned:
            raise ValueError(f"presentations={self.K}: beyond {aligned} presentations of {duration} at dt = {dt}, the resets between them "
                             f"(or the membrane samples, every {record_output_every}) would drift off the network's steps "
                             f"(float rounding); use fewer presentations per run")
        self.kind = check_device(device, "CompiledNetwork")
        self.conv = conv_form(conv, self.kind, "CompiledNetwork")
        self.C = check_input_copies(self.B, input_copies, net, encoder, self.conv, self.sweepable, "CompiledNetwork")
        _claim_device()
        self._claimed = True
        self.duration = duration
        self.runs = 0
        self.run_seconds = 0.0  # wall time spent in runs (standalone: starting the binary, loading, writing)
        self.sim_seconds = 0.0  # simulation loops (standalone: Brian2's own timer), summed over processes
        self.peak_rss = 0  # cpp: the highest peak resident memory (bytes) of a run of the binary so far
        self.project_edits: dict[str, int] = {}  # cpp: what bioconv's device optimized (`optimizations`)
        self.cache_hit = False  # cpp: the compiled project came from the cache (no build, no compile)
        self.key = None         # cpp: the project's cache key (`project.shape_parts`)
        self.built = self.network = self.manifest = self.project = None
        self._record_output_every = record_output_every
        self._stack = ExitStack()
        try:
            self.folder = self._stack.enter_context(simulation_device(
                device, dt=dt, threads=threads, float32=float32,
                directory=None if directory is None else Path(directory).resolve(),  # the binary runs elsewhere
                build_on_run=False, cuda=cuda))
            if self.kind == "cpp":
                # the seed is set per launch ($BIOCONV_SEED, see the device's `seed`): not part of the shape
                parts = shape_parts(net, B=self.B, K=self.K, duration=duration, dt=dt, encoder=encoder, seed="per run",
                                    record_output_every=sample_every, float32=float32, sweepable=self.sweepable,
                                    conv=self.conv, input_copies=self.C)
                self.key = cache.project_key(parts)
                self._open_project(use_cache=directory is None and cache.enabled())
            else:
                self._build()
                if self.kind == "runtime":
                    self.network.store("initial")
                else:
                    get_device().build(directory=str(self.folder), compile=True, run=False, with_output=False)
                    self._static = set(os.listdir(Path(self.folder) / "static_arrays"))
        except BaseException:
            self._stack.close()
            self._release()
            raise

    def _build(self):
        """The Brian2 objects of ``net`` for B copies x K presentations (run once, to generate code)."""
        n_in = self.net.populations[0].size
        self.built = build(self.net, np.zeros((self.B, n_in)), encoder=self.encoder,
                           record_output_every=self._record_output_every, record_times="output",
                           presentations=self.K, period=self.duration, sweepable=self.sweepable, conv=self.conv,
                           input_copies=self.C)
        self.network = Network(*self.built.objects)
        brian_seed(0 if self.kind == "cpp" else self.seed)  # cpp: each launch sets its seed
        if self.kind != "runtime":
            self.network.run(self.duration * self.K, namespace={})

    def _open_project(self, use_cache: bool):
        """The compiled project for this shape: from the cache if it holds it (nothing is built or
        compiled), else built and compiled here, then stored in the cache (``use_cache``)."""
        if not use_cache:
            self._compile()
            self.project = Path(self.folder)
        else:
            with cache.locked(self.key) as hit:  # one process compiles a shape, the others wait for it
                if hit is not None:
                    self.manifest = json.loads((hit / cache.MANIFEST).read_text())
                    self.project, self.cache_hit = hit, True
                    cache.touch(hit)
                    logger.info("compiled project cache hit: %s (%s)", self.key, hit)
                else:
                    self._compile()
                    folder = Path(self.folder)
                    files = ["main"] + [f"static_arrays/{n}" for n in sorted(os.listdir(folder / "static_arrays"))]
                    self.project = cache.store(self.key, folder, files, self.manifest)
                    logger.info("compiled project cached: %s (%s)", self.key, self.project)
                # held while this network is open: no eviction takes the project from under its runs
                self._stack.enter_context(cache.in_use(self.key))
        self.project_edits = dict(self.manifest["optimizations"])

    def _compile(self):
        """Build and compile the project in the build folder and describe it in a manifest; the Brian2
        objects are dropped afterwards (runs only need the binary and the manifest)."""
        self._build()
        dev = get_device()
        dev.build(directory=str(self.folder), compile=True, run=False, with_output=False)
        self.manifest = self._manifest(dev)
        _release_build_memory(dev)
        self.built = self.network = None

    def _manifest(self, dev) -> dict:
        """What a run of this project takes (run_args) and gives (results), by name (`_result_owners`)."""
        summary = {"populations": len(self.net.populations), "neurons_per_copy": network_size(self.net)[0],
                   "synapses_per_copy": network_size(self.net)[1], "conv": self.conv,
                   "stored_synapses_per_copy": stored_size(self.net, self.conv)[1],
                   "kernel_values": stored_size(self.net, self.conv)[2],
                   "memory_estimate_bytes": memory_estimate(self.net, self.B, self.conv, self.sweepable),
                   "copies": self.B, "input_copies": self.C, "presentations": self.K,
                   "duration_s": float(self.duration), "dt_s": self.dt, "encoder": self.encoder, "seed": self.seed}
        sizes = {name: np.size(v) for name, v in self._inputs(np.zeros((self.capacity, self.net.populations[0].size)))
                 .items()} | {name: np.size(v) for name, v in self._fixed_values().items()}
        return {"format": 1, "key": self.key, "binary": "main",
                "run_args": {name: dict(run_arg_spec(key, sizes[name]), unit=str(dim))
                             for name, (key, dim) in self._run_arg_keys().items()},
                "results": {name: result_spec(dev, obj, attr) for name, (obj, attr) in self._result_owners().items()},
                "samples_per_presentation": int(self.built.samples_per_presentation),
                "optimizations": dict(dev.optimizations), "summary": summary}

    def _run_arg_keys(self) -> dict:
        """Logical name -> (the Brian2 object a run sets, its dimensions): the input tables (K > 1) or
        the input variables, then every synapse weight and per-neuron parameter (`_fixed_values`)."""
        unit = self._encoder.unit.dim
        if self.K > 1:
            keys = {f"input_table/{name}": (table, unit) for name, table in self.built.input_tables.items()}
        else:
            keys = {f"input/{name}": (getattr(self.built.groups[name], var), unit)
                    for name, var in self.built.input_vars.items()}
        objects = {obj.name: obj for obj in self.built.objects}
        for name in (k[len("w/"):] for k in self._fixed_values() if k.startswith("w/")):
            view = self.built.weight_owners[name].w
            keys[f"w/{name}"] = (view, view.dim)
        for group, param in parameter_values(self.net, self.B, self.encoder, self.sweepable):
            view = getattr(objects[group], param)
            keys[f"param/{group}/{param}"] = (view, view.dim)
        return keys

    def _weights(self, net, n_copies: int) -> dict[str, np.ndarray]:
        """`network.weight_values` of ``net`` for ``n_copies`` copies, in this build's form."""
        return weight_values(net, n_copies, self.encoder, self.conv, self.sweepable,
                             input_copies=self.C if n_copies == self.B else None)

    def _fixed_values(self) -> dict[str, np.ndarray]:
        """The network's weights and per-neuron parameters as a launch passes them (SI units): not part
        of the project, so that one compiled project serves every network of its shape."""
        if getattr(self, "_fixed", None) is None:
            self._fixed = {f"w/{name}": v for name, v in self._weights(self.net, self.B).items()}
            self._fixed.update({f"param/{group}/{param}": v for (group, param), v in
                                parameter_values(self.net, self.B, self.encoder, self.sweepable).items()})
        return self._fixed

    def _result_owners(self) -> dict:
        """Logical name -> (Brian2 object, variable) of everything `_read` uses."""
        out = self.net.populations[-1].name
        owners = {}
        for name, mon in self.built.spikes.items():
            owners[f"count/{name}"] = (mon, "count")
            if name == out:
                owners[f"i/{name}"], owners[f"t/{name}"] = (mon, "i"), (mon, "t")
        for name, mon in self.built.counters.items():
            owners[f"counter/{name}"] = (mon, "spike_count")
            owners[f"group_count/{name}"] = (self.built.groups[name], "spike_count")
        if self.built.output_state is not None:
            owners["v/trace"] = (self.built.output_state, "v")
            owners["v/final"] = (self.built.groups[out], "v")
        if self.built.final_state is not None:
            owners["v/starts"] = (self.built.final_state, "v")
        for name, group in self.built.groups.items():
            if "v" in group.variables:  # checked for NaN after each run, as Brian2's device.run does
                owners[f"state/{name}"] = (group, "v")
        return owners

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._stack.close()
        self._release()

    def _release(self):
        global _device_held
        if getattr(self, "_claimed", False):
            _device_held = False
            self._claimed = False

    @property
    def capacity(self) -> int:
        """Samples per run: B copies x K presentations."""
        return self.B * self.K

    def _padded(self, x_rates) -> tuple[np.ndarray, int]:
        x_rates = np.asarray(x_rates, dtype=float)
        b = len(x_rates)
        if not 1 <= b <= self.capacity:
            raise ValueError(f"CompiledNetwork.run: batch of {b} samples, built for 1..{self.capacity}")
        padded = np.zeros((self.capacity, x_rates.shape[1]))
        padded[:b] = x_rates
        return padded, b

    def _inputs(self, padded: np.ndarray, points: list | None = None) -> dict[str, np.ndarray]:
        """What a standalone run sets on the command line, by logical name (`_run_arg_keys`), in the
        encoder's unit: the inputs of all copies and presentations (of the C input copies where
        copies share them)."""
        if self.C != self.B:
            padded = self._shared_inputs(padded)
        values = input_values(self.net, padded, self.encoder)
        if points is not None and set(values) != {self.net.populations[0].name}:
            values = self._inputs_per_copy(padded, points)
        if self.K > 1:  # sample s = k*B + copy: row k of each table holds presentation k's B copies
            return {f"input_table/{name}": v.reshape(self.K, -1) for name, v in values.items()}
        return {f"input/{name}": v for name, v in values.items()}

    def _shared_inputs(self, padded: np.ndarray) -> np.ndarray:
        """The samples of the C input copies (s = k*C + c), from those of all B copies (s = k*B + b);
        refused unless every copy b shows what copy b % C shows."""
        per_copy = padded.reshape(self.K, self.B, -1)
        shared = per_copy[:, :self.C]
        if not np.array_equal(per_copy, shared[:, np.arange(self.B) % self.C]):
            bad = np.flatnonzero([not np.array_equal(per_copy[:, b], shared[:, b % self.C]) for b in range(self.B)])
            raise ValueError(f"CompiledNetwork.run: built with {self.C} input copies shared by {self.B} copies, but copy "
                             f"{bad[0]} is given other samples than copy {bad[0] % self.C}")
        return shared.reshape(self.K * self.C, -1)

    def _copy_rows(self, p) -> np.ndarray | None:
        """Population ``p``'s rows (copies) as a run returns them, for B copies: None where the group
        holds B copies, else the input copy each of the B copies read (b % C)."""
        if self.C == self.B or p is not self.net.populations[0]:
            return None
        return np.arange(self.B) % self.C

    def _inputs_per_copy(self, padded: np.ndarray, points: list) -> dict[str, np.ndarray]:
        """Inputs that depend on the network (a non-spiking encoder's currents hold the first layers'
        biases): each copy's from its own point, laid out as `input_values` lays out all copies."""
        per = [input_values(self._point_network(pt), padded[b::self.B], self.encoder) for b, pt in enumerate(points)]
        out = {}
        for name in per[0]:
            blocks = [v[name].reshape(self.K, -1) for v in per]  # (K, size) per copy
            out[name] = np.concatenate(blocks, axis=1).ravel()   # presentation-major, then copy
        return out

    def _point_network(self, point: dict):
        key = tuple(sorted((n, float(v)) for n, v in point.items()))
        if key not in self._point_cache:
            if len(self._point_cache) >= 16:  # a few points at a time; weights can be large
                self._point_cache.pop(next(iter(self._point_cache)))
            self._point_cache[key] = sw.apply_point(self.net, point, self.sweepable)
        return self._point_cache[key]

    def _swept_keys(self) -> set:
        """The run_args (logical names) that parameter points change: the swept variables of every
        group, the bias sources' rates, and the weights where the kernel amplitude or the bias
        charge moves."""
        swept = {f"pop_{_safe(pop)}": names for pop, names in sw.swept_variables(self.net, self.sweepable).items()}
        keys = {f"param/{group}/{param}" for group, param in parameter_values(self.net, 1, self.encoder, self.sweepable)
                if group == "bias_source" or param in swept.get(group, ())}
        if "tau_s" in self.sweepable:
            keys |= {f"w/{name}" for name in self._weights(self.net, 1)}
        elif "bias_scale" in self.sweepable:
            keys |= {f"w/{name}" for name in self._weights(self.net, 1) if name.startswith("syn_bias_")}
        return keys

    def _point_values(self, params) -> tuple[list | None, dict[str, np.ndarray]]:
        """Per-copy points of ``params`` and the run_args they set (all copies, SI units)."""
        if not params:
            return None, {}
        values = sw.check_point(self.net, params, self.sweepable, where="CompiledNetwork.run")
        points = sw.copy_points(values, self.B)
        keys = self._swept_keys()
        out = {k: [] for k in keys}
        for pt in points:
            single = self._copy_values(self._point_network(pt), keys)
            for k in keys:
                out[k].append(single[k])
        return points, {k: np.concatenate(v) for k, v in out.items()}

    def _copy_values(self, net, keys) -> dict[str, np.ndarray]:
        """One copy's values of ``keys`` (`_swept_keys`) for ``net`` at a point, in SI units. Read from
        the point's network, not re-derived: which variables a run sets is the build's decision."""
        pops = {f"pop_{_safe(p.name)}": p for p in net.populations}
        out = {}
        for key in keys:
            kind, _, rest = key.partition("/")
            if kind != "param":
                continue
            group, _, param = rest.partition("/")
            if group == "bias_source":
                out[key] = np.array([float(net.rate_max)])
                continue
            p = pops[group]
            value = net.synapse_params[param] if param == "tau_s" else p.params[param]
            out[key] = np.broadcast_to(np.asarray(value, dtype=float), (p.size,))
        if any(k.startswith("w/syn_bias_") for k in keys):
            # the bias synapses are those of the build's network (a bias scale of 0 leaves them, at 0)
            for p in self.net.populations:
                key = f"w/syn_bias_to_{_safe(p.name)}"
                if key in keys:
                    out[key] = np.asarray(pops[f"pop_{_safe(p.name)}"].bias_weight)[np.flatnonzero(
                        np.asarray(p.bias_weight))]
        if any(k.startswith("w/") and k not in out for k in keys):
            out.update({f"w/{n}": v for n, v in self._weights(net, 1).items()
                        if f"w/{n}" in keys and f"w/{n}" not in out})
        return out

    def _run_args(self, padded: np.ndarray, params=None) -> dict:
        """The inputs (and a point's values) as Brian2's ``device.run`` takes them (cuda; the other
        weights are those of its build)."""
        keys = self._run_arg_keys()
        points, values = self._point_values(params)
        values = self._inputs(padded, points) | values
        return {keys[name][0]: Quantity(v, dim=keys[name][1]) for name, v in values.items()}

    def run(self, x_rates: np.ndarray, params=None) -> BatchOutput:
        """Present ``x_rates`` (b <= capacity samples, n_input), the coding scheme's encoded inputs in
        the encoder's ``value_unit`` (Hz for rate coding), each for the network's duration.
        Sample ``s`` runs in presentation ``s // B`` on copy ``s % B``. ``params``: values of the
        sweepable parameters (name -> Quantity, a scalar or one value per copy, shape (B,)): copy ``b``
        runs the mapped network at its point (`sweepable.apply_point`); the others keep the mapping's."""
        return next(iter(self.run_many([x_rates], params=params)))

    def run_many(self, batches, workers: int = 1, params=None, seeds=None):
        """Present every batch of ``batches`` (arrays as for `run`); yields their outputs in order.
        ``params``: as for `run`, for every batch, or a list of such dicts, one per batch.
        ``seeds``: one seed per batch (cpp, runtime), replacing the network's ``seed`` for that run.

        On ``cpp``, up to ``workers`` runs of the compiled binary go at once, each a process of its own
        with its own results folder: every run is single-threaded within Brian2's synaptic propagation
        (OpenMP leaves it to one thread), so separate processes are what keeps all cores busy.
        """
        if params is None or isinstance(params, dict):
            batches = ((x, params) for x in batches)
        else:
            batches = zip(batches, params, strict=True)
        if seeds is not None:
            if self.kind == "cuda":
                raise ValueError("CompiledNetwork.run_many: per-run seeds need the cpp or runtime device (on cuda "
                                 "the seed is part of the build)")
            batches = ((x, pt, s) for (x, pt), s in zip(batches, seeds, strict=True))
        else:
            batches = ((x, pt, None) for x, pt in batches)
        if self.kind != "cpp":
            for x, pt, s in batches:
                yield self._run_here(x, pt, s)
            return
        pending = deque()
        t0 = time.perf_counter()

        def oldest():  # wait for the oldest run; run_seconds counts the time spent here, not the caller's
            nonlocal t0
            out = self._collect(pending.popleft())
            self.run_seconds += time.perf_counter() - t0
            return out

        try:
            for x, pt, s in batches:
                pending.append(self._launch(x, pt, s))
                if len(pending) >= max(1, int(workers)):
                    yield oldest()
                    t0 = time.perf_counter()
            while pending:
                yield oldest()
                t0 = time.perf_counter()
        finally:
            for launch in pending:  # the caller stopped early, or a run failed: stop the others
                self._finish(launch, stop=True)

    def _run_here(self, x_rates, params=None, seed=None) -> BatchOutput:
        """One run through Brian2 itself: runtime (store/restore) or brian2cuda's device.run."""
        padded, b = self._padded(x_rates)
        points, values = self._point_values(params)
        t0 = time.perf_counter()
        if self.kind == "runtime":
            self.network.restore("initial")
            brian_seed(self.seed if seed is None else seed)
            # runtime runs one presentation per copy (K = 1): the inputs are the "input/<population>" values
            set_inputs(self.built, {name.split("/", 1)[1]: v for name, v in self._inputs(padded, points).items()})
            keys = self._run_arg_keys()
            for name, v in values.items():
                keys[name][0][:] = Quantity(v, dim=keys[name][1])
            self.network.run(self.duration, namespace={})
            self.sim_seconds += time.perf_counter() - t0
        else:
            dev = get_device()
            dev.run(directory=str(self.folder), results_directory="results", with_output=False,
                    run_args=self._run_args(padded, params))
            self.sim_seconds += float(getattr(dev, "_last_run_time", 0.0) or 0.0)
            self._drop_run_arg_files()
        self.run_seconds += time.perf_counter() - t0
        self.runs += 1
        owners = self._result_owners()
        return self._read(b, lambda name: np.asarray(getattr(*owners[name])))

    def _launch(self, x_rates, params=None, seed=None) -> "_Launch":
        """Start the project's binary on one batch, with its inputs and results in a folder of its own
        (never in the project, which other runs and processes share)."""
        padded, b = self._padded(x_rates)
        points, values = self._point_values(params)
        results = Path(tempfile.mkdtemp(prefix="run-", dir=self.folder))
        run_cmd = prefs.devices.cpp_standalone.run_cmd_unix
        cmd = ([run_cmd] if isinstance(run_cmd, str) else list(run_cmd)) + ["--results_dir", f"{results}{os.sep}"]
        if getattr(self, "_fixed_args", None) is None:  # weights and parameters: written once, read by every run
            fixed = Path(self.folder) / "fixed_args"
            fixed.mkdir(exist_ok=True)
            fixed_values = self._fixed_values()
            self._fixed_args = dict(zip(fixed_values, write_run_args(self.manifest, fixed_values, fixed)))
        # a point's values replace the mapping's (written per run)
        cmd += [arg for name, arg in self._fixed_args.items() if name not in values]
        cmd += write_run_args(self.manifest, self._inputs(padded, points) | values, results)
        # Synapses arrays that no code changes during a run are not written back (nobody reads them here)
        # The seed: the random numbers are those of a build seeded with it (None: a fresh one per run)
        seed = seed if seed is not None else self.seed
        seed = seed if seed is not None else int(np.random.SeedSequence().entropy % 2 ** 31)
        env = dict(os.environ, **prefs["devices.cpp_standalone.run_environment_variables"],
                   BIOCONV_SKIP_STATIC_OUTPUT="1", BIOCONV_SEED=str(int(seed)))
        stdout = open(results / "stdout.txt", "w")
        started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=self.project, stdout=stdout, stderr=subprocess.STDOUT, env=env)
        return _Launch(proc, results, b, stdout, started)

    def _finish(self, launch: "_Launch", stop: bool = False) -> int:
        """Wait for a run within its wall-time limit (``stop``: kill it first) and release its files."""
        try:
            if stop:
                launch.proc.kill()
                return launch.proc.wait()
            usage = {}
            rc = limits.wait(launch.proc, self.run_limit, self.project, started=launch.started, usage=usage)
            self.peak_rss = max(self.peak_rss, usage.get("maxrss_bytes", 0))
            return rc
        finally:
            launch.stdout.close()

    def _collect(self, launch: "_Launch") -> BatchOutput:
        try:
            rc = self._finish(launch)
            if rc:
                log = (launch.results / "stdout.txt").read_text()[-2000:]
                raise RuntimeError(f"the compiled network's run failed (exit code {rc}; project "
                                   f"{self.project}):\n{log}")
            log = (launch.results / "stdout.txt").read_text()
            # Brian2's binary reports a bad input or a missing static array on its output and goes on
            bad = [line for line in log.splitlines() if line.startswith(("Error", "Could not"))]
            if bad:
                raise RuntimeError(f"the compiled network's run reported errors (project {self.project}):\n"
                                   + "\n".join(bad[:20]))
            info = launch.results / "last_run_info.txt"
            if info.exists():
                self.sim_seconds += float(info.read_text().split()[0])
            results = Results(self.manifest, launch.results)
            out = self._read(launch.b, results.get)
            for name in self.manifest["results"]:  # as Brian2's device.run does: warn on NaN states
                if name.startswith("state/") and not np.all(np.isfinite(results.get(name))):
                    logger.warning("population %s: NaN or infinite membrane potentials after a run (project %s)",
                                   name[len("state/"):], self.project)
        finally:
            shutil.rmtree(launch.results, ignore_errors=True)
        self.runs += 1
        return out

    def _drop_run_arg_files(self):
        # Brian2 2.7.1 leaves every distinct run_args array in static_arrays/: keep the folder lean.
        folder = Path(self.folder) / "static_arrays"
        for name in set(os.listdir(folder)) - self._static:
            try:
                os.remove(folder / name)
            except OSError:
                pass

    def _read(self, b: int, get) -> BatchOutput:
        """The batch's output from ``get(name)`` (the values of `_result_owners`' variables, from the
        Brian2 objects or from a run's files)."""
        if self.K > 1:
            return self._read_presentations(b, get)
        counts = {}
        for p in self.net.populations:
            if f"count/{p.name}" not in self._result_names():
                continue
            rows = self._copy_rows(p)
            got = get(f"count/{p.name}")
            counts[p.name] = (got.reshape(self.B, p.size) if rows is None else got.reshape(self.C, p.size)[rows])[:b]
        out = self.net.populations[-1]
        i, t = get(f"i/{out.name}"), get(f"t/{out.name}")
        keep = i < b * out.size
        out_v = final_v = None
        if "v/trace" in self._result_names():
            v = get("v/trace")  # (B*n_out, n_recorded)
            out_v = v.reshape(self.B, out.size, -1)[:b]
            final_v = get("v/final").reshape(self.B, out.size)[:b]
        return BatchOutput(counts, i[keep] // out.size, i[keep] % out.size, t[keep], out_v, final_v)

    def _result_names(self) -> set:
        return set(self.manifest["results"]) if self.manifest is not None else set(self._result_owners())

    def _read_presentations(self, b: int, get) -> BatchOutput:
        """Split a run of K presentations into samples (s = k*B + copy): counts from each group's
        spike counter, sampled before every presentation's reset; output spikes by their times; the
        output's membrane samples by presentation, and its final V from the samples before each reset."""
        counts, out = {}, self.net.populations[-1]
        names = self._result_names()
        for p in self.net.populations:
            if f"counter/{p.name}" in names:
                sampled = get(f"counter/{p.name}")  # (B*size, K): before each reset
                final = get(f"group_count/{p.name}")  # the last presentation's
                per = np.concatenate([sampled[:, 1:self.K], final[:, None]], axis=1)
                rows = self._copy_rows(p)
                if rows is None:
                    counts[p.name] = per.T.reshape(self.capacity, p.size)[:b]
                else:  # the C input copies' counts, given to every copy that read them
                    counts[p.name] = per.T.reshape(self.K, self.C, p.size)[:, rows].reshape(self.capacity, p.size)[:b]
                continue
            if f"i/{p.name}" not in names:
                continue
            if self._copy_rows(p) is not None:  # `build` records the input's spikes by counters
                raise RuntimeError(f"population {p.name}: spike times of a shared input group are not split by copy")
            i, t = get(f"i/{p.name}"), get(f"t/{p.name}")
            step = np.rint(t / self.dt).astype(np.int64)
            k = step // self.steps  # presentation of each spike
            sample = k * self.B + i // p.size
            flat = sample * p.size + i % p.size
            counts[p.name] = np.bincount(flat, minlength=self.capacity * p.size).reshape(self.capacity, p.size)[:b]
            if p is out:
                keep = sample < b
                # times from the presentation's start as a run of its own stamps them: step * dt
                spikes = (sample[keep], (i % p.size)[keep], ((step - k * self.steps) * self.dt)[keep])
        out_v = final_v = None
        if "v/trace" in names:
            n = self.manifest["samples_per_presentation"] if self.manifest else self.built.samples_per_presentation
            v = get("v/trace")[:, :self.K * n]  # (B*n_out, K*n), presentation after presentation
            out_v = v.reshape(self.B, out.size, self.K, n).transpose(2, 0, 1, 3).reshape(self.capacity, out.size, n)[:b]
            before = get("v/starts")  # (B*n_out, K): at each presentation's start
            last = get("v/final")
            ends = np.concatenate([before[:, 1:self.K], last[:, None]], axis=1)
            final_v = ends.reshape(self.B, out.size, self.K).transpose(2, 0, 1).reshape(self.capacity, out.size)[:b]
        return BatchOutput(counts, *spikes, out_v, final_v)
