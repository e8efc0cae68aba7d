"""bioconv's Brian2 device (`bioconv.simulate.standalone`): its templates match the installed Brian2,
each optimization applies where it should (and only there), and the optimized code computes what
Brian2's own does. Networks come from numpy, so these run on both Brian2 pins."""
from __future__ import annotations

import os
import re
import subprocess

import brian2
import numpy as np
import pytest
from brian2 import (Network, NeuronGroup, SpikeMonitor, StateMonitor, Synapses, get_device, ms, prefs)

from bioconv import graph as G
from bioconv.converter import convert
from bioconv.simulate import standalone
from bioconv.simulate.devices import simulation_device
from bioconv.simulate.runner import CompiledNetwork
from bioconv.simulate.standalone import device as D
from bioconv.simulate.standalone.units import LOW_OPT_FLAG, PCH, UNIT, compile_order, merge_code_objects

DT = 0.1 * ms
_CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}


def test_templates_match_installed_brian2():
    """Every vendored template records the Brian2 template and versions it derives from; the installed
    Brian2 must be one of them, with the recorded upstream text (else: port the change)."""
    problems = standalone.drift()
    assert not problems, "\n".join(problems)
    records = D.upstream_records()
    pin = D._pin_folder()
    assert pin is not None, f"no objects.cpp for brian2 {brian2.__version__}"
    assert any(r["file"].startswith(pin + "/") for r in records.values())
    for rec in records.values():  # every vendored template is recorded, and every record names a file
        assert (D.TEMPLATES / rec["file"]).exists(), rec["file"]
    vendored = {str(p.relative_to(D.TEMPLATES)) for p in D.TEMPLATES.rglob("*") if p.is_file()} - {"UPSTREAM.toml"}
    assert vendored == {r["file"] for r in records.values()}


def test_drift_names_the_changed_template(tmp_path, monkeypatch):
    """A changed upstream template, or an unchecked Brian2 version, is reported by name."""
    fake = tmp_path / "brian2" / "devices" / "cpp_standalone" / "templates"
    fake.mkdir(parents=True)
    real = D.Path(brian2.__file__).parent / "devices" / "cpp_standalone" / "templates"
    for f in real.iterdir():
        (fake / f.name).write_bytes(f.read_bytes())
    (fake / "threshold.cpp").write_text((real / "threshold.cpp").read_text() + "\n// upstream change\n")
    monkeypatch.setattr(brian2, "__file__", str(tmp_path / "brian2" / "__init__.py"))
    problems = standalone.drift()
    assert len(problems) == 1 and "'threshold.cpp'" in problems[0] and "changed" in problems[0]
    monkeypatch.setattr(brian2, "__version__", "2.99.0")
    assert all("not the installed 2.99.0" in p for p in standalone.drift())


def _convnet_graph():
    """A ConvNet shape from numpy: conv -> ReLU -> max pool -> conv -> ReLU -> avg pool -> linear ->
    ReLU -> linear (biases on the first conv and the linears)."""
    rng = np.random.default_rng(1)
    return G.sequential((1, 10, 10), [
        ("conv2d", {"weight": rng.normal(0, 0.4, (3, 1, 3, 3)), "bias": rng.normal(0, 0.05, 3), "padding": 1}),
        "relu", ("maxpool2d", {"kernel": 2}),
        ("conv2d", {"weight": rng.normal(0, 0.3, (4, 3, 3, 3))}), "relu", ("avgpool2d", {"kernel": 3}),
        "flatten", ("linear", {"weight": rng.normal(0, 0.4, (6, 4)), "bias": rng.normal(0, 0.05, 6)}), "relu",
        ("linear", {"weight": rng.normal(0, 0.4, (3, 6))})])


@pytest.mark.slow
def test_convnet_project_is_optimized_exactly_where_it_should_be():
    """On a ConvNet-shaped project: every thresholder but the Poisson input's is blocked (its condition
    draws a random number), and every pathway (projections, bias source, max-pool gate) can skip its
    queue; the counts are exact."""
    x = np.random.default_rng(2).random((20, 1, 10, 10))
    snn = convert(_convnet_graph(), x, bias="neuron")
    pops = snn.mapped.populations
    for encoder, blocked in (("regular", len(pops) + 1), ("poisson", len(pops))):
        # thresholders: one per population (input included) and the bias source
        with CompiledNetwork(snn.mapped, 2, duration=10 * ms, dt=DT, encoder=encoder, device="cpp", threads=1) as net:
            opt = net.project_edits
        # as bioconv.simulate.network.build connects them: each projection (a Synapses, or a shared-kernel
        # pathway for the two convolutions), one gate per max pool, and the bias source to every
        # population with a non-zero bias weight
        n_shared = sum(1 for p in pops[1:] for q in p.projections if q.kernels)
        n_pathways = sum(1 if p.kind == "maxpool" else len(p.projections)
                         + int(p.bias_weight is not None and np.any(np.asarray(p.bias_weight) != 0))
                         for p in pops[1:]) - n_shared
        assert n_pathways >= 4 and n_shared == 2 and opt["conv_pathways_shared"] == n_shared
        assert opt["thresholds"] == len(pops) + 1
        assert opt["thresholds_blocked"] == blocked, (encoder, opt)
        assert opt["pathways"] == opt["pathways_direct"] == n_pathways, opt
        assert opt["queue_setup_out_of_line"] == 1 and opt["openmp_simd"] == 1
        # merged into a unit per core, the project has too few sources for a precompiled header to pay
        assert opt["code_objects_merged"] > 10 and opt["precompiled_header_includes"] == 0
        # indices and weights of every projection, and the gates' indices
        assert opt["static_synapse_arrays_skippable"] >= 3 * n_pathways - 2, opt


def _thresholder_code(folder, group):
    path = next((folder / "code_objects").glob(f"{group}_spike_thresholder_codeobject*.cpp"))
    return path.read_text()


def test_blocked_threshold_only_where_the_condition_reads_values(tmp_path):
    """The blocked test applies where the condition only reads values; a condition that draws random
    numbers (Poisson input) keeps Brian2's loop, so no number is drawn twice; -fopenmp-simd reaches the
    compiler; switched off by its preference, no loop is blocked."""
    for on in (True, False):
        folder = tmp_path / f"on_{on}"
        with simulation_device("cpp", dt=DT, threads=1, build_on_run=False, directory=folder):
            prefs.devices.bioconv_standalone.block_thresholds = on
            try:
                pure = NeuronGroup(40, "v : 1", threshold="v >= 0.5", reset="v = 0", name="pure")
                rand = NeuronGroup(40, "p : 1", threshold="rand() < p", name="rand")
                Network(pure, rand).run(1 * ms)
                get_device().build(directory=str(folder), compile=False, run=False, with_output=False)
                opt = get_device().optimizations
            finally:
                prefs.devices.bioconv_standalone.block_thresholds = True
        code = _thresholder_code(folder, "pure")
        assert opt["thresholds"] == 2 and opt["thresholds_blocked"] == (1 if on else 0)
        assert ("reduction(|:_any)" in code and "if(!_any) continue;" in code) == on
        assert code.count("_count++] = _idx;") == 1  # one scan: Brian2's loop, over a block or the whole group
        assert ("_block_end" in code) == on
        assert "_any" not in _thresholder_code(folder, "rand")
        assert "-fopenmp-simd" in (folder / "makefile").read_text()


def test_blocked_threshold_gives_brians_spikes(tmp_path):
    """Blocked thresholds (with refractoriness, group sizes that are not a multiple of the block, many
    and few spikes) give the spikes of Brian2's own cpp_standalone device, in the same order."""
    def simulate(device):
        folder = tmp_path / device
        with simulation_device("cpp", dt=DT, threads=1, directory=folder, build_on_run=False):
            if device == "cpp_standalone":  # Brian2's own C++ device, as the reference
                brian2.set_device("cpp_standalone", directory=str(folder), build_on_run=False)
            g = NeuronGroup(37, "dv/dt = (1.2 + 0.05 * i - v) / (5*ms) : 1 (unless refractory)", threshold="v > 1",
                            reset="v = 0", refractory=2 * ms, method="exact", name="g")
            h = NeuronGroup(16, "dv/dt = (0.3 + 0.1 * i) / (3*ms) : 1", threshold="v > 1", reset="v -= 1",
                            method="euler", name="h")
            mg, mh = SpikeMonitor(g), SpikeMonitor(h)
            Network(g, h, mg, mh).run(30 * ms)
            get_device().build(directory=str(folder), compile=True, run=True, with_output=False)
            opt = getattr(get_device(), "optimizations", None)
            return [np.asarray(a) for a in (mg.i, mg.t, mh.i, mh.t)], opt

    ref, _ = simulate("cpp_standalone")
    got, opt = simulate(D.NAME)
    assert opt["thresholds_blocked"] == 2
    for r, g in zip(ref, got):
        np.testing.assert_array_equal(g, r)
    assert len(ref[0]) > 50 and len(ref[2]) > 50


@pytest.mark.slow
def test_precompiled_header_is_used(monkeypatch):
    """The headers every generated source includes are compiled once: GCC reports the precompiled file
    as used ('!') when it compiles a code object of the project, and make never scans dependencies
    in a pass of its own (each object writes its .d file as it compiles)."""
    snn = convert(G.load(os.path.join(os.path.dirname(__file__), "data", "small_convnet.npz")),
                  np.random.default_rng(3).random((40, 1, 8, 8)))
    monkeypatch.setenv("BIOCONV_PROJECT_CACHE", "off")  # built in its folder, not taken from the cache
    # merged into a unit per core, a project has a few sources: no header, which would only delay them
    with CompiledNetwork(snn.mapped, 1, duration=5 * ms, dt=DT, device="cpp", threads=1) as net:
        assert not (net.folder / f"{PCH}.gch").exists() and net.project_edits["precompiled_header_includes"] == 0
    # one source per code object (merging off, as Brian2 writes them): the header pays, and is used
    monkeypatch.setitem(prefs, "devices.bioconv_standalone.merge_code_objects", False)
    with CompiledNetwork(snn.mapped, 1, duration=5 * ms, dt=DT, device="cpp", threads=1) as net:
        assert net.project_edits["code_objects_merged"] == 0 and net.project_edits["precompiled_header_includes"] > 3
        assert (net.folder / f"{PCH}.gch").exists()
        assert not (net.folder / "make.deps").exists()
        obj = next((net.folder / "code_objects").glob("*_codeobject.o")).relative_to(net.folder)
        assert obj.with_suffix(".d").exists() or (net.folder / obj.with_suffix(".d")).exists()
        lines = subprocess.run(["make", "--no-print-directory", "-B", "-n", str(obj)], cwd=net.folder,
                               capture_output=True, text=True, env=_CLEAN_ENV).stdout.splitlines()
        cmd = next(line for line in lines if f"-o {obj}" in line)
        assert f"-include {PCH}" in cmd
        assert not any(" -MM " in line for line in lines)
        used = subprocess.run(f"{cmd.replace(f' -o {obj}', '')} -H -o /dev/null", shell=True, cwd=net.folder,
                              capture_output=True, text=True)
        assert used.returncode == 0 and re.search(rf"^! (\./)?{re.escape(PCH)}\.gch$", used.stderr, re.M), \
            used.stderr[:2000]
        # an unchanged project is not rebuilt
        again = subprocess.run(["make", "--no-print-directory", "-q"], cwd=net.folder, env=_CLEAN_ENV)
        assert again.returncode == 0


def test_merged_code_objects_keep_each_object_apart(tmp_path):
    """Merged code objects compile into one program that computes what the separate ones did: helpers
    of the same name (Brian2's support code) and the macros each object defines stay its own (also
    one that a standard header had defined before), each function is reachable by its declared name,
    every merged object keeps -O3 and only objects.cpp gets -O0 (not passed on to the precompiled
    header); an object whose header declares more than functions, that includes a header after its
    opening includes, or that includes a user's header, is left on its own."""
    co = tmp_path / "code_objects"
    co.mkdir()
    names = []

    def code_object(name, helper, macro, extra_header="", late_include="", include=""):
        names.append(name)
        (co / f"{name}.h").write_text(f"#ifndef _INCLUDED_{name}\n#define _INCLUDED_{name}\n\nvoid _run_{name}();\n"
                                      f"{extra_header}\n#endif\n")
        (co / f"{name}.cpp").write_text(
            f'#include "code_objects/{name}.h"\n#include <cstdio>\n#include <cmath>\n{include}'
            f"namespace {{\n    inline int helper() {{ return {helper}; }}\n}}\n"
            f"{late_include}#ifndef OFFSET\n#define OFFSET {macro}\n#endif\n"
            f"#ifndef M_PI\n#define M_PI 3\n#endif\n"  # already defined by <cmath>: must stay so
            f'void _run_{name}() {{ std::printf("{name} %d %.2f\\n", helper() + OFFSET, M_PI); }}\n')

    code_object("a_codeobject", 1, 10)
    code_object("b_codeobject", 2, 20)
    code_object("c_codeobject", 3, 30)
    code_object("odd_codeobject", 4, 40, extra_header="extern int odd_count;")
    code_object("late_codeobject", 5, 50, late_include="#include <cstdlib>\n")
    code_object("user_codeobject", 6, 60, include='#include "user.h"\n')
    (tmp_path / "user.h").write_text("#define USER_THING 1\n")
    (tmp_path / PCH).write_text("#include <cstdio>\n")
    (tmp_path / "objects.cpp").write_text("int odd_count = 0;\n")
    (tmp_path / "main.cpp").write_text(
        "".join(f'#include "code_objects/{n}.h"\n' for n in names)
        + "int main() { " + " ".join(f"_run_{n}();" for n in names) + " return 0; }\n")
    sources = [f"code_objects/{n}.cpp" for n in names] + ["objects.cpp", "main.cpp"]
    new_sources, merged = merge_code_objects(tmp_path, sources, units=1)
    assert merged == 3
    for name in ("odd", "late", "user"):
        assert f"code_objects/{name}_codeobject.cpp" in new_sources
    assert f"code_objects/{UNIT}_0.cpp" in new_sources and "code_objects/a_codeobject.cpp" not in new_sources
    makefile = D.BioconvCodeObject.templater.makefile(
        None, None, source_files=" ".join(new_sources), header_files="", compiler_flags="-O3",
        build_order=" ".join(compile_order(tmp_path, new_sources)),
        compiler_debug_flags="", linker_debug_flags="", linker_flags="", rm_cmd="rm -f $(OBJS)", pch=PCH,
        low_opt_sources=["objects.cpp"], low_opt_flag=LOW_OPT_FLAG)
    (tmp_path / "makefile").write_text(makefile)
    build = subprocess.run(["make", "--no-print-directory", "-j2", "objects.o"], cwd=tmp_path, capture_output=True,
                           text=True, env=_CLEAN_ENV)  # objects.o first: its flags must not reach the header
    build2 = subprocess.run(["make", "--no-print-directory", "-j2"], cwd=tmp_path, capture_output=True, text=True,
                            env=_CLEAN_ENV)
    assert build.returncode == 0 and build2.returncode == 0, build.stderr[-3000:] + build2.stderr[-3000:]
    lines = (build.stdout + build2.stdout).splitlines()

    def last_opt(target):
        return re.findall(r"-O\d", next(line for line in lines if target in line))[-1]

    assert last_opt("objects.cpp") == LOW_OPT_FLAG == "-O0"
    # built largest first (the merged unit before the others), linked in the sources' own order
    compiled = [line.split(" -o ")[-1] for line in lines if " -c " in line and ".gch" not in line]
    assert compiled.index(f"code_objects/{UNIT}_0.o") < compiled.index("main.o")
    link = next(line for line in lines if re.search(r" -o main(\s|$)", line)).split()
    objs = [w for w in link if w.endswith(".o")]
    assert objs == [s.rsplit(".", 1)[0] + ".o" for s in new_sources], (objs, new_sources)
    assert last_opt(f"{PCH}.gch") == last_opt(f"{UNIT}_0.cpp") == "-O3"
    out = subprocess.run(["./main"], cwd=tmp_path, capture_output=True, text=True).stdout.split("\n")
    assert out[:6] == [f"{n} {11 * k} 3.14" for k, n in enumerate(names, start=1)]


def _propagation_network(n_src=20, n_tgt=7):
    rng = np.random.default_rng(5)
    pairs = [(i, j) for i in range(n_src) for j in range(n_tgt) if rng.random() < 0.6]
    shuffled = [pairs[k] for k in rng.permutation(len(pairs))]
    sub = [(i, j) for i, j in shuffled if i < 10]
    # deterministic spikes, several per step, from a group that has subgroups
    src = NeuronGroup(n_src, "", threshold="(i * 7 + timestep(t, dt)) % 11 == 0", name="src")
    tgt = NeuronGroup(n_tgt, "a : 1\nb : 1\nc : 1", name="tgt")
    s1 = Synapses(src[5:15], tgt, "w : 1", on_pre="a_post += w", name="s1")  # subgroup, shuffled order
    s1.connect(i=np.array([i for i, _ in sub]), j=np.array([j for _, j in sub]))
    s1.w = np.arange(len(sub)) % 5 + 1
    s2 = Synapses(src, tgt, "w : 1", on_pre="b_post += w", name="s2")  # in source order
    s2.connect(i=np.array([i for i, _ in pairs]), j=np.array([j for _, j in pairs]))
    s2.w = np.arange(len(pairs)) % 3 + 1
    s3 = Synapses(src, tgt, "w : 1", on_pre="c_post += w", delay=0.5 * ms, name="s3")  # through the queue
    s3.connect(i=np.array([i for i, _ in shuffled]), j=np.array([j for _, j in shuffled]))
    s3.w = np.arange(len(shuffled)) % 4 + 1
    mon = StateMonitor(tgt, ["a", "b", "c"], record=True)
    return Network(src, tgt, s1, s2, s3, mon), mon, s3


@pytest.mark.parametrize("threads", [1, 2])
def test_direct_propagation_gives_brians_values(tmp_path, threads):
    """Synaptic events applied straight from the source's spikes (zero delay) give the values of
    Brian2's runtime device: from a subgroup, with synapses not in source order (each source's synapses
    not contiguous) and in order (contiguous); a pathway with a delay keeps the spike queue and still
    delivers its events on time, also those still queued when a second run sets its delay to zero.
    Every reader of a queue (one per run) gets the direct loop, or none does: under OpenMP none."""
    def simulate(kind):
        with simulation_device(kind, dt=DT, threads=threads, directory=tmp_path / kind if kind == "cpp" else None,
                               build_on_run=False):
            net, mon, s3 = _propagation_network()
            net.run(5 * ms, namespace={})
            s3.delay = 0 * ms  # events of the last 0.5 ms are still in the queue
            net.run(2 * ms, namespace={})
            opt = None
            if kind == "cpp":
                get_device().build(directory=str(tmp_path / kind), compile=True, run=True, with_output=False)
                opt = get_device().optimizations
            return np.asarray(mon.a), np.asarray(mon.b), np.asarray(mon.c), opt

    ref = simulate("runtime")
    got = simulate("cpp")
    opt = got[3]
    assert opt["pathways"] == 3 and opt["pathways_direct"] == (3 if threads == 1 else 0)
    readers = [p.read_text() for p in (tmp_path / "cpp" / "code_objects").glob("s*_pre_codeobject*.cpp")]
    assert len(readers) == 6  # three pathways, two runs
    assert sum("bioconv: zero delay" in code for code in readers) == (6 if threads == 1 else 0)
    assert opt["queue_setup_out_of_line"] == 1 and opt["code_objects_merged"] > 5
    for name, r, g in zip("abc", ref, got):
        np.testing.assert_array_equal(g, r, err_msg=name)
    assert ref[0][:, -1].sum() > 0 and ref[2][:, -1].sum() > 0
    assert not np.array_equal(ref[2], ref[1])  # the delayed pathway's values trail the others'


def test_dense_targets_give_brians_values(tmp_path):
    """A spiking source whose synapses are one contiguous range has its events applied with the
    target computed (and vectorized) only when its targets are one increasing run of neurons: a fully
    connected pathway, one into a target subgroup, and two whose sources' synapses are contiguous but
    whose targets are not a run (permuted; increasing with a gap) give Brian2's runtime values, with a
    weight per synapse and a second statement into a variable that every pathway adds to. A pathway
    that also writes a variable of its source keeps the loaded-target loop (its events would be a
    reduction, which -ffast-math lets the compiler reorder)."""
    n_src, n_tgt = 12, 9
    rng = np.random.default_rng(3)

    full_i, full_j = np.repeat(np.arange(n_src), n_tgt), np.tile(np.arange(n_tgt), n_src)
    perm_j = np.concatenate([rng.permutation(n_tgt) for _ in range(n_src)])
    gap = [(i, j) for i in range(n_src) for j in range(n_tgt) if j != i % (n_tgt - 1)]
    sub_j = np.tile(np.arange(4), n_src)
    conns = [("full", "a", full_i, full_j), ("perm", "b", full_i, perm_j),
             ("gap", "c", np.array([p[0] for p in gap]), np.array([p[1] for p in gap])),
             ("sub", "d", np.repeat(np.arange(n_src), 4), sub_j),
             ("pre", "f", full_i, full_j)]  # also writes the source's variable: no computed-target loop
    weights = [rng.normal(size=len(c[2])) for c in conns]

    def simulate(kind):
        with simulation_device(kind, dt=DT, threads=1, directory=tmp_path / kind if kind == "cpp" else None,
                               build_on_run=False):
            src = NeuronGroup(n_src, "x : 1", threshold="(i * 5 + timestep(t, dt)) % 7 == 0", name="src")
            tgt = NeuronGroup(n_tgt, "a : 1\nb : 1\nc : 1\nd : 1\nf : 1\nsum_ : 1", name="tgt")
            syn = []
            for (name, var, i, j), w in zip(conns, weights):
                target = tgt[3:7] if name == "sub" else tgt
                extra = "\nx_pre += w" if name == "pre" else ""
                s = Synapses(src, target, "w : 1", on_pre=f"{var}_post += w\nsum__post += 0.5 * w{extra}",
                             name=name)
                s.connect(i=i, j=j)
                s.w = w
                syn.append(s)
            mon = StateMonitor(tgt, ["a", "b", "c", "d", "f", "sum_"], record=True)
            mon_x = StateMonitor(src, "x", record=True)
            net = Network(src, tgt, *syn, mon, mon_x)
            net.run(3 * ms, namespace={})
            if kind == "cpp":
                get_device().build(directory=str(tmp_path / kind), compile=True, run=True, with_output=False)
            return [np.asarray(getattr(mon, v)) for v in ("a", "b", "c", "d", "f", "sum_")] + [np.asarray(mon_x.x)]

    ref, got = simulate("runtime"), simulate("cpp")
    readers = {p.name.split("_pre_codeobject")[0]: p.read_text()
               for p in (tmp_path / "cpp" / "code_objects").glob("*_pre_codeobject*.cpp")}
    assert sorted(readers) == ["full", "gap", "perm", "pre", "sub"]
    assert all(("_post_first" in code) == (name != "pre") for name, code in readers.items())
    for name, r, g in zip(["a", "b", "c", "d", "f", "sum_", "x"], ref, got):
        np.testing.assert_array_equal(g, r, err_msg=name)
    assert all(np.abs(r[:, -1]).sum() > 0 for r in ref)


def test_static_synapse_arrays_not_written_by_launches_but_plastic_ones_are(tmp_path):
    """Launched with BIOCONV_SKIP_STATIC_OUTPUT (bioconv's launcher), a run writes no Synapses array that
    no code changes during the run (indices, constant weights), but does write a weight that on_pre
    changes; Brian2's own device.run writes everything, so values read back through Brian2 are there."""
    folder = tmp_path / "p"
    with simulation_device("cpp", dt=DT, threads=1, directory=folder, build_on_run=False):
        src = NeuronGroup(4, "", threshold="i == timestep(t, dt) % 4", name="src")
        tgt = NeuronGroup(3, "a : 1", name="tgt")
        fixed = Synapses(src, tgt, "w : 1 (constant)", on_pre="a_post += w", name="fixed")
        fixed.connect(i=[0, 1, 2, 3], j=[0, 1, 2, 0])
        fixed.w = [1, 2, 3, 4]
        plastic = Synapses(src, tgt, "u : 1", on_pre="u += 1\na_post += u", name="plastic")
        plastic.connect(i=[0, 3], j=[1, 2])
        Network(src, tgt, fixed, plastic).run(2 * ms)
        dev = get_device()
        dev.build(directory=str(folder), compile=True, run=True, with_output=False)
        assert dev.optimizations["static_synapse_arrays_skippable"] >= 3
        np.testing.assert_array_equal(fixed.w[:], [1, 2, 3, 4])
        np.testing.assert_array_equal(fixed.j[:], [0, 1, 2, 0])
        np.testing.assert_array_equal(plastic.u[:], [5, 5])  # 20 steps, each source fires every 4th
        written = {p.name for p in (folder / "results").iterdir()}
        launched = tmp_path / "launched"
        launched.mkdir()
        subprocess.run(["./main", "--results_dir", f"{launched}/"], cwd=folder, check=True,
                       env=dict(os.environ, BIOCONV_SKIP_STATIC_OUTPUT="1"), capture_output=True)
        skipped = written - {p.name for p in launched.iterdir()}
        assert any("fixed_w" in n for n in skipped) and any("fixed__synaptic_pre" in n for n in skipped)
        assert not any("plastic_u" in n for n in skipped)
        u = np.fromfile(next(launched.glob("*plastic_u*")), dtype=np.float64)
        np.testing.assert_array_equal(u, [5, 5])


def test_a_run_past_its_wall_time_limit_fails_naming_the_project(tmp_path, monkeypatch):
    """Brian2's own run path (simulation_device with build_on_run) kills a binary that outlives
    $BIOCONV_RUN_LIMIT and raises an error naming the project, within the limit plus 5 s."""
    import time
    from bioconv.errors import RunTimeLimitError
    folder = tmp_path / "slow"
    with simulation_device("cpp", dt=DT, threads=1, directory=folder, build_on_run=False):
        g = NeuronGroup(1000, "dv/dt = -v / (10*ms) : 1", method="exact")
        Network(g).run(10000 * brian2.second)  # 10^8 steps of 1000 neurons: far longer than the limit
        dev = get_device()
        dev.build(directory=str(folder), compile=True, run=False, with_output=False)
        monkeypatch.setenv("BIOCONV_RUN_LIMIT", "1.5")
        started = time.monotonic()
        with pytest.raises(RunTimeLimitError, match=re.escape(str(folder))):
            dev.run(str(folder), with_output=False)
        assert time.monotonic() - started < 1.5 + 5
        assert prefs.devices.cpp_standalone.run_cmd_unix == "./main"  # restored


def test_delete_removes_what_the_device_built_and_nothing_is_missing(tmp_path, monkeypatch):
    """Brian2's ``device.delete`` (its test_delete_code_data / test_delete_directory) also deletes what
    only this device's build writes (per-object .d files, merged units, the precompiled header), and
    neither misses nor warns about (brian2 >= 2.10) what Brian2's build writes and this one does not
    (make.deps, the objects of merged code objects): the project folder goes, without a warning."""
    from brian2.utils.logger import catch_logs
    from bioconv.simulate.standalone import units
    monkeypatch.setattr(units, "PCH_MIN_SOURCES_PER_CORE", 0)  # a precompiled header even for a few sources
    for whole_folder in (False, True):
        folder = tmp_path / f"p{whole_folder}"
        with simulation_device("cpp", dt=DT, threads=1, directory=folder, build_on_run=False):
            g = NeuronGroup(10, "dv/dt = (2 - v) / (10*ms) : 1", threshold="v > 1", reset="v = 0", method="exact",
                            name="g")
            s = Synapses(g, g, "w : 1", on_pre="v_post += w", name="s")
            s.connect(j="i")
            Network(g, s, SpikeMonitor(g)).run(1 * ms)
            dev = get_device()  # with_output: else Brian2 leaves results/stdout.txt, which it does not delete
            dev.build(directory=str(folder), compile=True, run=True, with_output=True)
            opt = dev.optimizations
            assert opt["code_objects_merged"] > 1 and opt["precompiled_header_includes"] > 0
            assert (folder / f"{PCH}.gch").exists() and (folder / "code_objects" / f"{UNIT}_0.d").exists()
            with catch_logs() as logs:
                dev.delete(code=True, data=True, directory=whole_folder)
            assert logs == []
            if whole_folder:
                assert not folder.exists()
            else:
                assert os.listdir(folder / "code_objects") == [] and os.listdir(folder / "results") == []
                assert not list(folder.glob("*.d")) and not list(folder.glob(f"{PCH}*"))


def test_a_launch_reseeds_as_a_build_with_that_seed(tmp_path):
    """With $BIOCONV_SEED = s, a project built with another seed draws the random numbers of a build
    seeded with s (one compiled project serves every seed); without it, its own seed's."""
    def build(folder, seed):
        with simulation_device("cpp", dt=DT, threads=1, directory=folder, build_on_run=False):
            g = NeuronGroup(50, "p : 1", threshold="rand() < p", name="g")
            g.p = 0.05
            mon = SpikeMonitor(g, name="mon")
            brian2.seed(seed)
            Network(g, mon).run(20 * ms)
            dev = get_device()
            dev.build(directory=str(folder), compile=True, run=False, with_output=False)
            return dev.get_array_filename(mon.variables["i"])

    def spikes(folder, name, env_seed=None):
        out = folder / f"out_{env_seed}"
        out.mkdir()
        env = dict(os.environ, **({"BIOCONV_SEED": str(env_seed)} if env_seed is not None else {}))
        subprocess.run(["./main", "--results_dir", f"{out}/"], cwd=folder, check=True, env=env, capture_output=True)
        return np.fromfile(out / name, dtype=np.int32)

    name = build(tmp_path / "s0", 0)
    build(tmp_path / "s5", 5)
    own5 = spikes(tmp_path / "s5", name)
    assert len(own5) > 20
    np.testing.assert_array_equal(spikes(tmp_path / "s0", name, env_seed=5), own5)
    assert not np.array_equal(spikes(tmp_path / "s0", name), own5)
