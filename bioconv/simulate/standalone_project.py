"""Edits to a generated cpp_standalone project before it is compiled: what Brian2 does for every
project that a compile-once, run-many converted network does not need, or can do faster.
`edit_project` applies them all, in order.

- `skip_synapse_outputs`: no end-of-run dump of the per-synapse arrays;
- `block_thresholds`: threshold tests that skip spike-free blocks of neurons;
- `propagate_directly`: zero-delay synaptic events applied from the source's spikes, without
  copying every event through the spike queue;
- `use_precompiled_header`: the headers every code object includes are parsed once, not once per
  file, and the dependency scan of a fresh project is skipped;
- `merge_code_objects`: the code objects compiled as a few translation units, not one each;
- `set_up_queues_out_of_line`: the spike queue's set-up compiled once per unit, not once per pathway.

Each edit matches the code that Brian2 2.7.1 generates (the pinned version); where a pattern does not
match (another template, OpenMP), it leaves that part of the project as Brian2 wrote it. The tests
check each edit against Brian2's own simulation.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

_SYNAPSE_OUTPUT = re.compile(
    r"\tofstream outfile_(_dynamic_array_(?:syn|gate)_\w+);.*?Error writing output file for \1\.\" << endl;\n\t\}\n",
    re.S)

PCH = "bioconv_pch.h"
_INCLUDE = re.compile(r'^#include\s*([<"][^>"]+[>"])', re.M)
_COMPILE_RULE = "%.o : %.cpp makefile\n\t$(CXX) $(CXXFLAGS) $< -o $@"


def skip_synapse_outputs(objects_cpp: Path) -> int:
    """Drop the end-of-run dump of per-synapse arrays from a cpp_standalone project's objects.cpp.

    Brian2 writes every array to the results folder after each run; for a batched ConvNet that is
    gigabytes of indices and weights per run that nobody reads back (they only change at build
    time). Returns how many arrays were dropped. Reading a synapse variable after such a run fails.
    """
    code = objects_cpp.read_text()
    code, n = _SYNAPSE_OUTPUT.subn("", code)
    objects_cpp.write_text(code)
    return n


def use_precompiled_header(folder: Path) -> list[str]:
    """Compile the headers shared by a fresh cpp_standalone project's sources once (GCC precompiled
    header), and skip its dependency scan. Returns the headers put in the precompiled header.

    The header is force-included (``-include``) before every C++ source; it holds only headers that
    most sources include anyway, all guarded, so a source sees the same declarations as before. If
    GCC cannot use the precompiled file (other flags, other compiler) it reads the header as text:
    slower, never different. The dependency file only serves rebuilds of a changed project, which
    bioconv never does: any earlier build output in ``folder`` is removed first, so everything is
    compiled from the current sources.
    """
    folder = Path(folder)
    makefile = folder / "makefile"
    text = makefile.read_text()
    if _COMPILE_RULE not in text:  # another Brian2 makefile layout: leave the project as it is
        return []
    sources = sorted((folder / "code_objects").glob("*.cpp")) + [folder / n for n in
                                                                  ("main.cpp", "objects.cpp", "network.cpp", "run.cpp")]
    counts = Counter()
    first_seen = {}
    for src in sources:
        if not src.exists():
            continue
        for k, inc in enumerate(dict.fromkeys(_INCLUDE.findall(src.read_text()))):
            counts[inc] += 1
            first_seen.setdefault(inc, (len(first_seen), k))
    # headers included by at least half the sources, none of a single code object's own
    shared = [inc for inc in sorted(counts, key=first_seen.get)
              if counts[inc] * 2 >= len(sources) and "code_objects/" not in inc]
    if not shared:
        return []
    (folder / PCH).write_text("#pragma once\n" + "".join(f"#include {inc}\n" for inc in shared))
    text = text.replace(_COMPILE_RULE,
                        f"{PCH}.gch: {PCH} makefile\n\t$(CXX) $(CXXFLAGS) -x c++-header $< -o $@\n\n"
                        f"$(OBJS): {PCH}.gch\n\n"
                        f"%.o : %.cpp makefile\n\t$(CXX) $(CXXFLAGS) -include {PCH} $< -o $@")
    makefile.write_text(text)
    for old in list(folder.rglob("*.o")) + [folder / "main", folder / f"{PCH}.gch"]:
        old.unlink(missing_ok=True)
    (folder / "make.deps").write_text("")  # newer than every source: make does not rescan them
    return [inc.strip('<>"') for inc in shared]


# Brian2's threshold loop (cpp_standalone template): the per-neuron body declares constants and the
# condition, then appends the neuron to the spike space if the condition holds.
_THRESHOLD_LOOP = re.compile(
    r"(?P<indent>[ \t]*)for\(size_t _idx=0; _idx<N; _idx\+\+\)\n"
    r"(?P=indent)\{\n"
    r"(?P<head>[ \t]*const size_t _vectorisation_idx = _idx;\n)"
    r"(?P<body>(?:[ \t]*(?:const [\w:]+ \w+ = [^;(\n]*;)?[ \t]*\n)+)"
    r"(?P<tail>[ \t]*if\(_cond\) \{\n.*?\n(?P=indent)\}\n)", re.S)
BLOCK = 16
_OPTIMISATIONS = "\nOPTIMISATIONS = "


def _gcc_makefile(folder: Path) -> str | None:
    """The text of the project's makefile if it has Brian2 2.7.1's Unix layout (GCC, with an
    OPTIMISATIONS line the edits can extend), else None: the edits then leave the project alone."""
    makefile = Path(folder) / "makefile"
    text = makefile.read_text() if makefile.exists() else ""
    return text if _OPTIMISATIONS in text else None


def block_thresholds(folder: Path) -> int:
    """Let the threshold tests of a cpp_standalone project skip spike-free blocks of neurons.

    Brian2's threshold loop tests one neuron at a time and branches to append it to the spike space,
    which the compiler cannot vectorize: in a converted network, where a neuron fires in a small
    fraction of steps, that loop is a fifth of the run time. Here each block of 16 neurons is first
    tested without branching (vectorized: any neuron of the block over threshold?), and only a block
    with a spike runs Brian2's own loop (about 4x faster on a loop where few neurons fire). Applied only where the test reads values and compares them
    (no function call, so no random number is drawn twice); the spikes are the same, in the same
    order. Returns how many loops were changed.
    """
    folder = Path(folder)
    text = _gcc_makefile(folder)
    if text is None:
        return 0
    # `omp simd` lets GCC vectorize the block test (an OR over chars it otherwise keeps scalar);
    # -fopenmp-simd honours only simd pragmas, it starts no threads
    (folder / "makefile").write_text(text.replace(_OPTIMISATIONS, _OPTIMISATIONS + "-fopenmp-simd ", 1))
    changed = 0
    for path in sorted((folder / "code_objects").glob("*_spike_thresholder_codeobject*.cpp")):
        code = path.read_text()

        def blocked(m):
            ind, body = m["indent"], m["body"]
            return (f"{ind}for(size_t _block=0; _block<N; _block+={BLOCK})\n{ind}{{\n"
                    f"{ind}if(_block+{BLOCK} <= N)\n{ind}{{\n"
                    f"{ind}long _any = 0;\n"
                    f"{ind}#pragma omp simd reduction(|:_any)\n"
                    f"{ind}for(size_t _idx=_block; _idx<_block+{BLOCK}; _idx++)\n{ind}{{\n"
                    f"{m['head']}{body}{ind}    _any |= _cond;\n{ind}}}\n"
                    f"{ind}if(!_any) continue;\n{ind}}}\n"
                    f"{ind}const size_t _block_end = _block+{BLOCK} < N ? _block+{BLOCK} : N;\n"
                    f"{ind}for(size_t _idx=_block; _idx<_block_end; _idx++)\n{ind}{{\n"
                    f"{m['head']}{body}{m['tail']}{ind}}}\n")

        code, n = _THRESHOLD_LOOP.subn(blocked, code)
        if n:
            path.write_text(code)
            changed += n
    return changed


# Brian2's synaptic propagation (cpp_standalone, one thread): the push code object copies the index of
# every synapse of every spiking source into the spike queue; the pre code object then reads them
# back and applies the event to each.
_PUSH = re.compile(r"(?P<q>\w+)\.push\(_ptr(?P<space>_array_\w+__spikespace), "
                   r"_ptr(?P=space)\[_num_spikespace-1\]\);")
_NUM_SPIKESPACE = re.compile(r"const size_t _num_spikespace = (\d+);")
_PEEK = re.compile(r"(\w+)\.peek\(\)")
_QUEUE_LOOP = re.compile(
    r"(?P<indent>[ \t]*)std::vector<int> \*_spiking_synapses = (?P<q>\w+)\.peek\(\);\n"
    r"[ \t]*const int _num_spiking_synapses = _spiking_synapses->size\(\);\n"
    r"(?:[ \t]*\n)*"
    r"[ \t]*\{\n"
    r"[ \t]*for\(int _spiking_synapse_idx=0;\n"
    r"[ \t]*_spiking_synapse_idx<_num_spiking_synapses;\n"
    r"[ \t]*_spiking_synapse_idx\+\+\)\n"
    r"[ \t]*\{\n"
    r"[ \t]*const size_t _idx = \(\*_spiking_synapses\)\[_spiking_synapse_idx\];\n"
    r"[ \t]*const size_t _vectorisation_idx = _idx;\n"
    r"(?P<body>(?:(?: {12}[^\n]*)?\n)*?)"
    r" {8}\}\n"
    r" {4}\}\n")


def _direct(q: str) -> str:
    """C++ condition under which pathway ``q``'s events can skip the queue: the pathway runs on one
    thread (one queue), every delay is zero (the queue then hands the events on in the same step) and
    the queue has a single slot (no event of an earlier run with a delay is waiting in a later one).
    A pathway without synapses has no delay to read."""
    return (f"({q}._nb_threads == 1 && ({q}.sources.empty() || ({q}.queue[0]->scalar_delay && "
            f"{q}.queue[0]->delays[0] == 0 && {q}.queue[0]->queue.size() == 1)))")


def _direct_loop(q: str, m: re.Match, space: str, size: int) -> str:
    """The pre code object's loop over queued synapses (``m``, of `_QUEUE_LOOP`), preceded by a loop over
    the source's spikes and their synapses that runs instead whenever `_direct` holds."""
    ind, body = m["indent"], m["body"]
    queue = f"{q}.queue[0]"
    i2, i3, i4 = ind + "    ", ind + "        ", ind + "            "
    return (
        f"{ind}if {_direct(q)}\n{ind}{{\n"
        f"{i2}// zero delay: events straight from the source's spikes (bioconv: propagate_directly)\n"
        f"{i2}const int32_t * const _source_spikes = {space};\n"
        f"{i2}const int32_t _n_source_spikes = _source_spikes[{size - 1}];\n"
        f"{i2}for(int32_t _k=0; _k<_n_source_spikes; _k++)\n{i2}{{\n"
        f"{i3}const int32_t _source = _source_spikes[_k];\n"
        f"{i3}if(_source < {queue}->source_start || _source >= {queue}->source_end) continue;\n"
        f"{i3}const std::vector<int> &_synapses = {queue}->synapses[_source - {queue}->source_start];\n"
        f"{i3}const size_t _n_synapses = _synapses.size();\n"
        f"{i3}if(_n_synapses == 0) continue;\n"
        f"{i3}if((size_t)(_synapses[_n_synapses-1] - _synapses[0]) == _n_synapses-1)\n{i3}{{\n"
        f"{i4}// one contiguous range (the list is increasing): no index to load per event\n"
        f"{i4}const size_t _first = _synapses[0];\n"
        f"{i4}for(size_t _idx=_first; _idx<_first+_n_synapses; _idx++)\n{i4}{{\n"
        f"{i4}const size_t _vectorisation_idx = _idx;\n{body}{i4}}}\n{i3}}}\n"
        f"{i3}else\n{i3}{{\n"
        f"{i4}for(size_t _j=0; _j<_n_synapses; _j++)\n{i4}{{\n"
        f"{i4}const size_t _idx = _synapses[_j];\n"
        f"{i4}const size_t _vectorisation_idx = _idx;\n{body}{i4}}}\n{i3}}}\n"
        f"{i2}}}\n{ind}}}\n{ind}else\n{ind}{{\n{m.group(0)}{ind}}}\n")


def propagate_directly(folder: Path) -> int:
    """Apply the synaptic events of zero-delay pathways straight from the source's spikes, without
    the spike queue.

    Brian2 copies the index of every synapse of every spiking neuron into its spike queue, then reads
    them back in the same step when the delay is zero: for a converted ConvNet that is over 10 M
    copies per sample, a quarter of the run. Here the pre code object walks the source's spike space
    and each spiking neuron's synapse list itself (a contiguous range when synapses were created in
    source order, as bioconv creates them), and the push code object no longer fills the queue. The
    events are applied in the same order as through the queue (sources as in the spike space,
    synapses as in their list), so every value is the same. Whether the delays are zero is known
    only once the binary has loaded them: the generated code checks it (`_direct`) and keeps Brian2's
    queue otherwise. Only the single-threaded template for code that changes pre- or postsynaptic
    variables is changed (under OpenMP, or for code on synaptic variables only, the pattern does not
    match); a queue is bypassed only if every code object that reads it is changed. Returns how many
    event code objects were changed (one per pathway and `run` call).
    """
    folder = Path(folder)
    pushes = {}  # pathway -> its push code object (path, text, push call) and its source's spike-space size
    for path in sorted((folder / "code_objects").glob("*_push_spikes.cpp")):
        if path.name.startswith(("before_run_", "after_run_")):
            continue
        code = path.read_text()
        m, n = _PUSH.search(code), _NUM_SPIKESPACE.search(code)
        if m and n and m["q"] not in pushes:
            pushes[m["q"]] = (path, code, m, int(n.group(1)))
    readers = {q: [] for q in pushes}  # the code objects reading each queue, with their loop if it matches
    for path in sorted((folder / "code_objects").glob("*.cpp")):  # names vary (_1, _2, ... per run)
        code = path.read_text()
        queues = [q for q in dict.fromkeys(_PEEK.findall(code)) if q in readers]
        if not queues:
            continue
        loops = list(_QUEUE_LOOP.finditer(code))
        for q in queues:
            ok = len(loops) == 1 and loops[0]["q"] == q
            readers[q].append((path, code, loops[0] if ok else None))
    changed = 0
    for q, objects in readers.items():
        if not objects or any(m is None for _, _, m in objects):
            continue  # a reader left as it is would find the queue empty
        path, code, push, size = pushes[q]
        for rpath, rcode, m in objects:
            rpath.write_text(rcode[:m.start()] + _direct_loop(q, m, push["space"], size) + rcode[m.end():])
            changed += 1
        path.write_text(code[:push.start()] + f"if(!{_direct(q)}) " + code[push.start():])
    return changed


# Headers a merged code object may include: Brian2's own and the standard library's. A code object
# that includes anything else (a user's header, which may define macros) is compiled on its own.
_OWN_HEADER = re.compile(r'^"(?:(?:brianlib|code_objects)/[\w./]+|objects\.h|network\.h|run\.h|synapses_classes\.h'
                         r'|randomkit\.h)"$|^<(?:\w+|(?:assert|limits|math|stdint|stdio|stdlib|string|time)\.h)>$')
_DECLARATION = re.compile(r"^void (\w+)\(\);$", re.M)
_HEADER_LINE = re.compile(r"^(?:#ifndef \w+|#define \w+|#endif|void \w+\(\);|\s*)$")
_LEADING_INCLUDES = re.compile(r'(?:[ \t]*\n|#include\s*[<"][^>"]+[>"][ \t]*\n)*')
_MACRO = re.compile(r"^[ \t]*#[ \t]*define[ \t]+(\w+)", re.M)
UNIT = "bioconv_unit"
# objects.cpp only allocates, reads, parses and writes arrays (no arithmetic on a simulated value):
# compiled at -O1, which halves its compile time. Everything else keeps Brian2's flags, since another
# optimization level can round differently (e.g. no fused multiply-adds at -O1).
_LOW_OPT = "objects.cpp"


def _leading_includes(code: str) -> tuple[list[str], str]:
    """The includes of a generated source's opening block, and the rest of it."""
    head = _LEADING_INCLUDES.match(code).group(0)
    return [m.group(1) for m in _INCLUDE.finditer(head)], code[len(head):]


def _mergeable(src: Path) -> bool:
    """A code object whose header only declares functions, that includes only Brian2's and the
    standard headers, and only in its opening block (they move to the top of the unit)."""
    header = src.with_suffix(".h")
    if not (src.suffix == ".cpp" and header.exists()
            and all(_HEADER_LINE.match(line) for line in header.read_text().splitlines())):
        return False
    includes, body = _leading_includes(src.read_text())
    return all(_OWN_HEADER.match(inc) for inc in includes) and "#include" not in body


def _unit_source(files: list[Path]) -> str:
    """One translation unit for ``files``: their includes first, then each file's code in a namespace
    of its own (their support code repeats the same helper names), each macro it defines restored
    after it to what it was before (push/pop), and a global function forwarding to each function its
    header declares."""
    includes, parts = {}, []
    for src in files:
        incs, body = _leading_includes(src.read_text())
        includes.update(dict.fromkeys(incs))
        space = f"_{UNIT}_{src.stem}"
        macros = list(dict.fromkeys(_MACRO.findall(body)))
        parts.append(f"// ---- {src.name}\n"
                     + "".join(f'#pragma push_macro("{name}")\n' for name in macros)
                     + f"namespace {space} {{\n{body}\n}}\n"
                     + "".join(f'#pragma pop_macro("{name}")\n' for name in reversed(macros))
                     + "".join(f"void {f}() {{ {space}::{f}(); }}\n"
                               for f in _DECLARATION.findall(src.with_suffix(".h").read_text())))
    return "".join(f"#include {inc}\n" for inc in includes) + "\n".join(parts)


def merge_code_objects(folder: Path, units: int = 2) -> int:
    """Compile a cpp_standalone project's code objects as a few translation units instead of one each.

    A ConvNet project has about 60 code objects of a few lines each; every one of them costs its
    compiler start and header load (about 0.13 s even with a precompiled header), which was most of
    the compile. Here they are merged into ``units`` sources (one per core that compiles them), and
    `objects.cpp` is compiled at -O1. The code of each object is unchanged and compiled with the same
    flags: it sits in a namespace of its own, the macros it defines are restored after it, and its
    functions are called through the names its header declares. A code object whose header declares
    anything else than such functions, or that includes other headers than Brian2's and the standard
    library's, or any header after its opening block, is compiled on its own, as before. Returns how
    many code objects were merged. Run after the edits to single code objects.
    """
    folder = Path(folder)
    text = _gcc_makefile(folder)
    srcs = re.search(r"^SRCS = (.*)$", text, re.M) if text is not None else None
    if srcs is None:
        return 0
    sources = srcs.group(1).split()
    mergeable = [folder / name for name in sources if name.startswith("code_objects/") and _mergeable(folder / name)]
    if len(mergeable) < 2:
        return 0
    # spread the objects over the units by size, largest first
    n = max(1, int(units))
    groups, sizes = [[] for _ in range(n)], [0] * n
    size = {src: src.stat().st_size for src in mergeable}
    for src in sorted(mergeable, key=size.get, reverse=True):
        k = sizes.index(min(sizes))
        groups[k].append(src)
        sizes[k] += size[src]
    new_sources = []
    for k, files in enumerate(g for g in groups if g):
        (folder / "code_objects" / f"{UNIT}_{k}.cpp").write_text(_unit_source(sorted(files)))
        new_sources.append(f"code_objects/{UNIT}_{k}.cpp")
    kept = [s for s in sources if folder / s not in set(mergeable)]
    text = text.replace(srcs.group(0), "SRCS = " + " ".join(kept + new_sources))
    if _LOW_OPT in kept:
        # private: not inherited by its prerequisites (the precompiled header keeps Brian2's flags)
        obj = _LOW_OPT.replace(".cpp", ".o")
        text += f"\n# bioconv (merge_code_objects): arrays only\n{obj}: private OPTIMISATIONS += -O1\n"
    (folder / "makefile").write_text(text)
    for old in (folder / "code_objects").glob("*.o"):
        old.unlink()
    return len(mergeable)


_QUEUE_SETUP = "    template <typename scalar> void prepare(int n_source, int n_target,"


def set_up_queues_out_of_line(folder: Path) -> int:
    """Keep the spike queue's set-up function out of the code objects that call it.

    `SynapticPathway::prepare`, run once per pathway and run, is a template defined in its class
    (synapses_classes.h), so at -O3 GCC copies it into every pathway's before-run code object: six
    such objects took 2.5 s to compile in one ConvNet translation unit, 0.5 s with the function kept
    out of line (``noinline``, still compiled at -O3, once per unit). It computes the same: its code is
    unchanged, only no longer copied into each caller. Returns 1 if the header was changed.
    """
    folder = Path(folder)
    header = folder / "synapses_classes.h"
    if _gcc_makefile(folder) is None or not header.exists():
        return 0
    code = header.read_text()
    if code.count(_QUEUE_SETUP) != 1:
        return 0
    out_of_line = _QUEUE_SETUP.replace("void prepare", "__attribute__((noinline)) void prepare")
    header.write_text(code.replace(_QUEUE_SETUP, out_of_line))
    return 1


def edit_project(folder: Path, compile_jobs: int = 2) -> dict[str, int]:
    """Apply every edit of this module to the fresh cpp_standalone project in ``folder`` (generated,
    not yet compiled); ``compile_jobs``: sources compiled at once. Returns what each edit changed."""
    folder = Path(folder)
    return {"synapse_outputs_skipped": skip_synapse_outputs(folder / "objects.cpp"),
            "threshold_loops_blocked": block_thresholds(folder),
            "event_code_objects_direct": propagate_directly(folder),
            "queue_set_up_out_of_line": set_up_queues_out_of_line(folder),
            "precompiled_headers": len(use_precompiled_header(folder)),
            "code_objects_merged": merge_code_objects(folder, units=compile_jobs)}
