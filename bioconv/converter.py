"""`convert`: a trained torch network (or a LayerGraph) to a Brian2 SNN; `SNN.evaluate`: how far it departs from the ANN."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from brian2 import Quantity, get_dimensions, ms
from tqdm.auto import tqdm

from . import graph as G
from .errors import BioconvError, ParameterError
from .coding import CodingScheme, RateCoding, check_labels, scheme as coding_scheme
from .mapping import MappedNetwork
from .normalize import Scales
from .optional import require_torch
from .simulate.devices import check_device, default_threads
from .simulate.network import conv_form
from .simulate.runner import (CompiledNetwork, aligned_presentations, batch_for_budget, default_memory_budget,
                              memory_estimate, network_size)
from .units import check_duration


def load_weights(model, path):
    """Load a state dict or a checkpoint ({'state_dict': ...}) from ``path`` into ``model``, safely
    (``torch.load(weights_only=True)``: no code from the file is run). Needs torch."""
    torch = require_torch("bioconv.load_weights")

    path = Path(path)
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise BioconvError(f"model file {str(path)!r} does not exist") from None
    except Exception as err:  # pickle errors, zip errors: the file is not a plain weights file
        raise BioconvError(f"model file {str(path)!r} cannot be loaded as weights only "
                           f"(torch.load(weights_only=True)): {type(err).__name__}: {err}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise BioconvError(f"model file {str(path)!r} holds a {type(state).__name__}, not a state dict")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise BioconvError(f"model file {str(path)!r} does not fit {type(model).__name__}: {err}") from None
    return model.eval()


def convert(model, calibration=None, *, input_shape=None, coding="rate", **params) -> "SNN":
    """Convert a trained network into a spiking network under the coding scheme ``coding``.

    ``model``: a torch module (imported by `bioconv.graph.from_torch`, which needs torch) or a
    `bioconv.graph.LayerGraph` (e.g. built from numpy arrays by `bioconv.graph.sequential`, or read by
    `bioconv.graph.load`; no torch needed). The graph is not changed, so it can be converted again.
    ``calibration``: inputs (N, *input_shape) for data-based normalization (needed by rate coding).
    ``coding``: a registered scheme (`bioconv.coding.schemes`). ``params``: the scheme's parameters,
    validated by it before any work on the data; a parameter of another scheme is refused by name.

    Rate coding (``coding="rate"``, `bioconv.coding.RateCoding`) takes ``normalization`` ('max',
    'pXX.X' (default p99.9), a number, or a dict of per-population scales), ``Cm``, ``v_th``,
    ``tau_ref``, ``rate_max``, ``synapse``, ``tau_s``, ``bias``, ``reset``, ``leak_rule`` and
    ``readout``, described in `bioconv.mapping`, and ``homeostasis`` (None: off; True or a dict of
    ``tau_r``, ``tau_theta``, ``k_theta``, ``r_target``, ``vt_floor``: seed 001's homeostatic threshold
    on every membrane, r_target by default each neuron's mean calibration target rate, the threshold
    never below v_reset + vt_floor (v_th - v_reset); `bioconv.coding.rate`).
    """
    scheme = coding_scheme(coding, **params)  # before any work on the data
    if isinstance(model, G.LayerGraph):
        if input_shape is not None and tuple(input_shape) != model.input_shape:
            raise BioconvError(f"convert: input_shape {tuple(input_shape)} is not the graph's input shape "
                               f"{model.input_shape}")
        input_shape = model.input_shape
    if calibration is None:
        if scheme.needs_calibration:
            raise BioconvError(f"convert: coding {scheme.name!r} normalizes with calibration data; pass calibration "
                               f"inputs (N, *input_shape)")
        if input_shape is None and not isinstance(model, G.LayerGraph):
            raise BioconvError("convert: without calibration data, a torch model needs input_shape")
    else:
        calibration = scheme.check_inputs(calibration, input_shape, "convert (calibration data)")
    graph = model if isinstance(model, G.LayerGraph) else _import_torch(model, input_shape, calibration)
    pops = scheme.populations(graph)
    mapped, acts = scheme.map(graph, pops, calibration)
    snn = SNN(graph, pops, mapped, acts, coding=scheme)
    # what `snn.save` records of how the network was made
    snn.conversion = dict(scheme.values, n_calibration=0 if calibration is None else len(calibration))
    return snn


def rate_values_of(mapped: MappedNetwork, settings: dict | None = None) -> dict:
    """Rate coding's parameters (`RateCoding.PARAMETERS`) as far as they are known for a network:
    those in ``settings`` (what `convert` recorded), else those the mapped network ``mapped`` holds:
    ``rate_max``, ``synapse`` and its ``tau_s``, ``bias``, ``reset``, ``readout``, ``Cm``, ``v_th`` (the
    distance from reset to threshold of a firing population) and ``tau_ref`` where every population
    that has them holds one value, and ``normalization`` where its scales name a method. A parameter
    known from neither is left out (the scheme's default applies)."""
    values = dict(rate_max=mapped.rate_max, synapse=mapped.synapse, bias=mapped.bias, reset=mapped.reset,
                  readout=mapped.readout)
    values.update({k: v for k, v in mapped.synapse_params.items() if k in RateCoding.PARAMETERS})
    neurons = [p for p in mapped.populations if p.kind not in ("input", "maxpool") and p.params]
    # an output read by its potential never fires: its threshold is out of reach, not the mapped v_th
    firing = [p for p in neurons if not (p.kind == "output" and mapped.readout == "potential")]
    for name, pops in (("Cm", neurons), ("tau_ref", neurons), ("v_th", firing)):
        found, dim = [], None
        for p in pops:
            if name in p.params:
                q = p.params[name] - p.params.get("v_reset", 0 * p.params[name]) if name == "v_th" else p.params[name]
                found.append(np.asarray(q, dtype=float).ravel())
                dim = get_dimensions(q)
        flat = np.concatenate(found) if found else np.zeros(0)
        if flat.size and np.all(flat == flat[0]):
            values[name] = Quantity(flat[0], dim=dim)
    try:
        values["normalization"] = RateCoding.PARAMETERS["normalization"].validate(str(mapped.scales.method),
                                                                                   "normalization", "rate")
    except BioconvError:  # a label of given scales ('given', 'constant 3.5', 'nir'), not a method
        pass
    values.update({k: v for k, v in (settings or {}).items() if k in RateCoding.PARAMETERS})
    return values


def _import_torch(model, input_shape, calibration) -> G.LayerGraph:
    """`G.from_torch`, with the input shape taken from the calibration data unless given: a shape that
    does not fit the network is then the data's fault, and the error says so."""
    shape = tuple(input_shape) if input_shape is not None else tuple(calibration.shape[1:])
    try:
        return G.from_torch(model, shape)
    except G.ShapeError as err:
        culprit = ("input_shape" if input_shape is not None else "the calibration data's shape per sample")
        raise BioconvError(f"convert: {culprit} {shape} does not fit {type(model).__name__}: {err}") from None


@dataclass
class EvaluationResult:
    """What `SNN.evaluate` measured. Rates in Hz, times in seconds. ``settings['coding']`` and
    ``settings['coding_params']`` name the coding scheme and its parameters; which metrics apply to
    it: ``bioconv.coding.schemes[settings['coding']].metric_names``."""

    accuracy: float
    ann_accuracy: float
    agreement: float
    layer_correlation: dict[str, float]
    scatter: dict[str, tuple[np.ndarray, np.ndarray]]  # population -> (ANN target rate, SNN rate), subsampled
    times: np.ndarray
    accuracy_vs_time: np.ndarray
    agreement_vs_time: np.ndarray
    synaptic_events: int
    undecided_fraction: float  # no unique winner at T (no output, or a tie)
    n_samples: int
    duration: float
    dt: float
    settings: dict = field(default_factory=dict)
    error_terms: dict | None = None  # population -> {'bias2', 'variance'} (several seeds)
    predictions: np.ndarray | None = None  # (N, len(times)) SNN decision per sample and time, -1 = undecided
    ann_predictions: np.ndarray | None = None
    wall_s: float = 0.0
    build_s: float = 0.0  # of wall_s: building (and compiling) the network
    run_s: float = 0.0    # of wall_s: running it, batch after batch
    sim_s: float = 0.0    # of run_s: the simulation loops themselves (the rest: process start, loading, output)
    # temporal-code metrics (bioconv.coding.metrics), for the schemes that declare them
    decision_time: np.ndarray | None = None  # (N,) s: first read time from which the decision is final (NaN: undecided)
    spikes_per_neuron: dict | None = None    # population -> mean spikes per neuron and sample; 'all': over all
    energy_proxy: float | None = None        # seed 004 eq. 22 per sample: SynOPs + NeuronOPs

    def summary(self) -> dict:
        return dict(accuracy=self.accuracy, ann_accuracy=self.ann_accuracy, agreement=self.agreement,
                    n_samples=self.n_samples, duration_s=self.duration, dt_s=self.dt,
                    synaptic_events=self.synaptic_events, undecided_fraction=self.undecided_fraction,
                    min_layer_correlation=float(np.min(list(self.layer_correlation.values()))), wall_s=self.wall_s,
                    build_s=self.build_s, run_s=self.run_s, sim_s=self.sim_s, **self.settings)


# When samples also run one after another within a run, the default number of disjoint copies keeps
# a run's neurons near this many: their states then stay in the CPU caches, and a step costs least
# per sample (measured on the MNIST ConvNet, 14,654 neurons per copy: 2 copies beat 4, 8 and 32;
# bench/README.md).
SEQUENTIAL_NEURONS = 32_000
# Samples per run of the compiled binary when samples run in sequence (see `SNN.evaluate`).
SAMPLES_PER_RUN = 256


class SNN:
    """A converted network: the imported graph, its populations and their mapped physical parameters."""

    def __init__(self, graph: G.LayerGraph, pops: list[G.Population], mapped: MappedNetwork, calibration_acts,
                 coding: CodingScheme | None = None):
        self.graph, self.populations, self.mapped = graph, pops, mapped
        self._calibration_acts = calibration_acts
        self._coding = coding
        self.conversion: dict = {}  # the settings `convert` was called with (saved with the network)

    @property
    def scales(self) -> Scales:
        return self.mapped.scales

    def save(self, path) -> Path:
        """Write the network to ``path`` (bioconv's open, versioned format: `bioconv.io.save`);
        `bioconv.load` reads it back, without torch."""
        from .io import save
        return save(self, path)

    def table(self) -> str:
        """Every layer's mapped parameters with units."""
        return self.mapped.table()

    @property
    def coding(self) -> CodingScheme:
        """The coding scheme the network was converted under, with its parameters (``coding.name``,
        ``coding.params()``: a JSON-able dict; `bioconv.coding.from_params` reads it back).

        A network made without one (``SNN(..., coding=None)``, e.g. by `bioconv.from_nir`) is rate
        coded, with the parameters in ``conversion`` where set (what `convert`
        recorded), else those its mapped network holds (`rate_values_of`), else rate coding's defaults."""
        if self._coding is None:
            self._coding = RateCoding(**rate_values_of(self.mapped, self.conversion))
        return self._coding

    def saturation(self, dt=0.1 * ms) -> dict[str, float]:
        """Fraction of units per population whose calibration target rate comes within 10 % of the
        lower of 1/tau_ref and 1/dt (rate coding)."""
        if not hasattr(self.coding, "saturation"):
            raise ParameterError(f"SNN.saturation: a rate-coding measure; this network is coded {self.coding.name!r}")
        return self.coding.saturation(self, dt)

    def targets(self, x) -> dict[str, np.ndarray]:
        """What each unit should produce for inputs ``x`` (N, *input_shape), per population (N, units),
        in the coding scheme's decoded quantity (rate coding: Hz)."""
        return self.coding.targets(self, self.coding.check_inputs(x, self.graph.input_shape, "SNN"))

    def target_rates(self, x) -> dict[str, np.ndarray]:
        """The rate (Hz) each unit should fire at for inputs ``x``: normalized ANN activation x rate_max
        (rate coding; `targets` for any scheme)."""
        if self.coding.name != "rate":
            raise ParameterError(f"SNN.target_rates: rate coding's targets; this network is coded "
                                 f"{self.coding.name!r}: use SNN.targets")
        return self.targets(x)

    def evaluate(self, x, y, *, duration=None, dt=None, steps=None, encoder=None, device="cpp", batch=None,
                 memory_budget=None, presentations=None, seeds=(0,), time_points=20, threads=None, float32=False,
                 progress=True, scatter_points=2000, conv="shared") -> EvaluationResult:
        """Simulate the SNN on inputs ``x`` (N, *input_shape) with labels ``y`` (N,).

        ``duration``, ``dt``, ``encoder``: None takes the coding scheme's defaults
        (``snn.coding.evaluation_defaults()``; rate coding: 200 ms, 0.1 ms, 'regular'). ``steps``: the
        scheme's coding steps (rate coding: the duration as a number of steps of dt, so steps x dt;
        not together with ``duration``). Inputs are encoded by the scheme (`CodingScheme.encode`) and
        enter through the encoder (`bioconv.coding.encoders`); the scheme decodes and scores the output.

        The network is built (and on ``device="cpp"``/``"cuda"`` compiled) once for ``batch`` samples
        as disjoint copies, then run for every batch with new inputs. ``threads``: cores to use on
        ``cpp`` (None = all, or $BIOCONV_THREADS): that many runs of the binary go at once as separate
        processes, and OpenMP threads take the cores left when there are fewer runs than cores.
        ``batch=None`` picks the largest batch whose estimated memory, once per parallel run, fits
        ``memory_budget`` bytes (default: a quarter of the RAM, at most 8 GiB); when samples run in
        sequence, at most about 32,000 neurons per run (`SEQUENTIAL_NEURONS`). ``presentations``:
        samples shown one after another to each copy within one run of the compiled binary, states
        reset in between (standalone devices; None = about `SAMPLES_PER_RUN` samples per run, each
        run's start-up then shared by many, within the memory budget for records and the
        clock-alignment limit). On ``cpp`` the compiled project comes from the project cache when a
        call of the same shape compiled it before (`bioconv.simulate.cache`; copies and presentations
        do not depend on the number of samples): ``settings['cache_hit']``. ``float32``:
        single-precision state variables. With several ``seeds`` (Poisson encoding) each sample runs
        once per seed, and the error of each layer's rates is split into bias and variance (FORMULAS §6).
        ``conv``: how convolutions are simulated: 'shared' (default; the kernel stored once, the
        targets of each spike computed from the geometry, on ``cpp``; the other devices keep them
        unrolled, logged) or 'unrolled' (one stored synapse per connection). The spikes are the
        same (README, "Fast simulation"); ``settings['conv']`` records the form used.
        """
        coding = self.coding
        duration, dt = coding.timing(duration, dt, steps, "SNN.evaluate")
        check_duration(duration, dt, "SNN.evaluate")
        encoder = coding.check_encoder(coding.evaluation_defaults()["encoder"] if encoder is None else encoder,
                                       "SNN.evaluate")
        check_device(device, "SNN.evaluate")
        conv = conv_form(conv, device, "SNN.evaluate")
        x = coding.check_inputs(x, self.graph.input_shape, "SNN.evaluate")
        own = coding.evaluate(self, x, y, duration=duration, dt=dt, encoder=encoder, device=device, batch=batch,
                              memory_budget=memory_budget, presentations=presentations, seeds=seeds,
                              time_points=time_points, threads=threads, float32=float32, progress=progress,
                              scatter_points=scatter_points)
        if own is not None:  # a scheme that simulates its networks itself
            return own
        n_out = self.mapped.populations[-1].size
        y = check_labels(y, len(x), n_out, "SNN.evaluate")
        sequential = device != "runtime"
        # cpp: the runs go in parallel processes, one per core (Brian2 propagates spikes on one thread
        # whatever the OpenMP setting); each process holds its own network, so each gets a share of
        # the memory budget. OpenMP threads only use the cores that runs leave idle.
        cores = default_threads() if threads is None else max(1, int(threads))
        workers = cores if device == "cpp" else 1
        auto_batch = batch is None
        if batch is None:
            # In sequence, copies come from the network and the memory budget alone (not from the number
            # of samples), so that calls with other data reuse the same compiled project.
            batch = max(1, batch_for_budget(self.mapped, 2 ** 62 if sequential else len(x), memory_budget, conv)
                        // workers)
            if sequential and (presentations is None or presentations > 1):
                batch = min(batch, max(1, SEQUENTIAL_NEURONS // network_size(self.mapped)[0]))
        if int(batch) != batch or batch < 1 or int(time_points) != time_points or time_points < 1:
            raise ParameterError(f"SNN.evaluate: batch and time_points must be positive integers, got {batch!r}, "
                                 f"{time_points!r}")
        seeds = tuple(seeds) if np.iterable(seeds) else (seeds,)
        if not seeds:
            raise ParameterError("SNN.evaluate: seeds must name at least one seed")
        if sequential and auto_batch:
            # fewer samples than full runs on every core: the next power of two that covers them (a few
            # shapes per network, each reused by later calls; at most 2x padding)
            batch = min(int(batch), 1 << (-(-len(x) // workers) - 1).bit_length())
        # an automatic batch keeps its planned size (the project's shape); one asked for is cut to the data
        batch, time_points = (int(batch) if sequential and auto_batch else min(int(batch), len(x))), int(time_points)
        if presentations is not None and (int(presentations) != presentations or presentations < 1):
            raise ParameterError(f"SNN.evaluate: presentations must be a positive integer, got {presentations!r}")
        if presentations is not None and presentations > 1 and not sequential:
            raise ParameterError(f"SNN.evaluate: presentations > 1 needs device 'cpp' or 'cuda', got {device!r}")
        t0 = time.perf_counter()
        targets, logits = coding.targets_and_logits(self, x)
        inputs = coding.encode(self, x, targets)  # (N, n_input) in the encoder's value unit
        names = [p.name for p in self.mapped.populations]
        n_pres = -(-len(x) // batch)  # presentations needed in all
        auto_presentations = presentations is None
        sample_every = duration / time_points if self.mapped.readout == "potential" else None
        if auto_presentations and sequential:
            # A run of the binary costs a start-up (loading the network): about SAMPLES_PER_RUN samples
            # per run share it (ConvNet, 1000 digits on 2 cores: 4 runs of 250 samples beat 2 of 500;
            # bench/README.md). B and K depend on the network, duration and memory, not on the data,
            # so calls with other samples reuse the compiled project; only a call with fewer samples
            # than one round of full runs takes the next powers of two that cover them.
            presentations = max(1, SAMPLES_PER_RUN // batch)
            fewer = -(-len(x) // (batch * workers))  # presentations that hold the data
            if fewer < presentations:
                presentations = 1 << (fewer - 1).bit_length()
            # Samples in sequence record the output's spikes (about 64 bytes each, binary and Python
            # side; at most what the scheme says, rate_max x T per unit for rate coding), every other neuron's count (16 bytes) and, for
            # the potential readout, the output's membrane samples (16 bytes): keep the records of
            # the runs in flight within half the memory budget.
            per_sample = coding.max_output_spikes(self.mapped, duration) * 64 + network_size(self.mapped)[0] * 16
            if self.mapped.readout == "potential":
                per_sample += n_out * (time_points + 1) * 16
            budget = (default_memory_budget() if memory_budget is None else int(memory_budget)) / 2 / workers
            presentations = max(1, min(presentations, int(budget // max(per_sample * batch, 1.0))))
            presentations = min(presentations, aligned_presentations(duration, dt, presentations, sample_every))
        elif auto_presentations:
            presentations = 1
        else:  # as asked, within what the data needs, the samples spread evenly over the runs
            presentations = min(int(presentations), n_pres)
            if presentations > 1:
                runs = -(-len(x) // (batch * presentations))
                batch = -(-len(x) // (runs * presentations))
        presentations = int(presentations)
        workers = min(workers, -(-len(x) // (batch * presentations)))
        omp_threads = max(1, cores // workers) if device == "cpp" else threads
        ann_pred = logits.argmax(1)
        T, step = float(duration), float(dt)
        times = np.linspace(T / time_points, T, time_points)
        counts = {s: {n: [] for n in names} for s in seeds}
        readout_scores = {s: [] for s in seeds}  # (B, n_times, n_out)
        per_run = batch * presentations
        starts = range(0, len(x), per_run)
        bar = tqdm(total=len(seeds) * len(x), desc=f"evaluate ({device}, {batch} copies x {presentations}"
                   + (f", {workers} runs at once" if workers > 1 else "") + ")", unit="sample", disable=not progress)
        build_s = run_s = sim_s = 0.0
        peak_rss = 0
        cache_hits, optimizations = [], {}
        for s in seeds:
            tb = time.perf_counter()
            with CompiledNetwork(self.mapped, batch, duration=duration, dt=dt, encoder=encoder, device=device,
                                 seed=s, threads=omp_threads, float32=float32,
                                 record_output_every=duration / time_points, presentations=presentations,
                                 conv=conv) as compiled:
                build_s += time.perf_counter() - tb
                cache_hits.append(compiled.cache_hit)
                optimizations = compiled.project_edits
                batches = (inputs[k:k + per_run] for k in starts)
                for k, out in zip(starts, compiled.run_many(batches, workers=workers)):
                    for name, c in out.counts.items():
                        counts[s][name].append(c)
                    readout_scores[s].append(coding.score(self.mapped, out, times, step))
                    bar.update(min(per_run, len(x) - k))
                run_s += compiled.run_seconds
                sim_s += compiled.sim_seconds
                peak_rss = max(peak_rss, compiled.peak_rss)
        bar.close()
        result = self._metrics(x, y, ann_pred, targets, counts, readout_scores, seeds, times, T, step, scatter_points,
                               encoder=encoder)
        # events of one presentation of the data set: each unit's spikes times its out-degree
        result.synaptic_events = sum(int(np.dot(np.concatenate(c).sum(0), self._out_degree(name)))
                                     for name, c in counts[seeds[0]].items() if c)
        self._temporal_metrics(result, counts[seeds[0]], readout_scores[seeds[0]], times, T, step)
        result.settings = dict(encoder=encoder, device=device, batch=batch, presentations=presentations,
                               parallel_runs=workers, openmp_threads=omp_threads if device == "cpp" else None,
                               seeds=list(seeds), float32=bool(float32), cache_hit=cache_hits,
                               optimizations=optimizations, conv=conv,
                               memory_estimate_bytes=memory_estimate(self.mapped, batch, conv),
                               peak_rss_bytes=peak_rss or None, **coding.settings(self.mapped),
                               coding=coding.name, coding_params=coding.params())
        result.wall_s = time.perf_counter() - t0
        result.build_s, result.run_s, result.sim_s = build_s, run_s, sim_s
        return result

    def _temporal_metrics(self, result, counts, scores, times, T, step):
        """The temporal-code metrics of `bioconv.coding.metrics` for a scheme of the shared pipeline
        that leaves them unset (rate coding), so that every code is scored the same way: the decision
        time from the readout ``scores`` at ``times`` (as coarse as the evaluation's time_points),
        spikes per neuron over the non-input populations (the first one, the input, is not counted),
        and the energy proxy per sample, SynOPs (``result.synaptic_events``, input spikes included)
        + NeuronOPs (non-input neurons x the run's T / dt steps)."""
        from .coding import metrics
        n = len(result.predictions) if result.predictions is not None else 0
        if result.decision_time is None and scores:
            result.decision_time = metrics.decision_time(np.concatenate(scores), times)
        inputs = self.mapped.populations[0].name
        hidden = {name: np.concatenate(c) for name, c in counts.items() if c and name != inputs}
        if result.spikes_per_neuron is None and hidden:
            result.spikes_per_neuron = metrics.spikes_per_neuron(hidden)
        if result.energy_proxy is None and n:
            neurons = sum(p.size for p in self.mapped.populations[1:])
            result.energy_proxy = float(metrics.energy_proxy(
                result.synaptic_events / n, metrics.neuron_updates(neurons, int(round(T / step)))))

    def _scores(self, out, times, dt) -> np.ndarray:
        """The coding scheme's readout scores of one run's output (`CodingScheme.score`)."""
        return self.coding.score(self.mapped, out, times, dt)

    def _metrics(self, x, y, ann_pred, targets, counts, readout_scores, seeds, times, T, step,
                 scatter_points, encoder=None) -> EvaluationResult:
        """The coding scheme's metrics of an evaluation (`CodingScheme.metrics`) as its result; also
        what `simulate.sweepable.evaluate_points` scores each parameter point with. Under an
        ``encoder`` whose input spikes do not code rates (`Encoder.rate_coded` False: the phase code)
        the input population's counts are left out, so no rate metric (layer_correlation, error_terms,
        scatter) compares them with rate targets; the synaptic events still count its spikes."""
        from .coding.encoders import encoders
        if encoder is not None and not encoders[encoder].rate_coded:
            inputs = self.mapped.populations[0].name
            counts = {s: {n: c for n, c in per.items() if n != inputs} for s, per in counts.items()}
        return EvaluationResult(**self.coding.metrics(
            x=x, y=y, ann_pred=ann_pred, targets=targets, counts=counts, scores=readout_scores, seeds=seeds,
            times=times, duration=T, dt=step, scatter_points=scatter_points))

    def _out_degree(self, name: str) -> np.ndarray:
        n = next(p.size for p in self.mapped.populations if p.name == name)
        deg = np.zeros(n)
        for p in self.mapped.populations:
            for q in p.projections:
                if q.source == name:
                    deg += q.out_degree(n)
            if p.kind == "maxpool" and p.projections[0].source == name:
                deg += (p.pool_groups >= 0)
        return deg
