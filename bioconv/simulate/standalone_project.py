"""Edits to a generated cpp_standalone project before it is compiled: what Brian2 does for every
project that a compile-once, run-many converted network does not need, or can do faster.

- `skip_synapse_outputs`: no end-of-run dump of the per-synapse arrays;
- `use_precompiled_header`: the headers every code object includes are parsed once, not once per
  file (a ConvNet project has about 70 files; parsing them was most of its 30 s compile), and the
  dependency scan of a fresh project is skipped.
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
    makefile = folder / "makefile"
    text = makefile.read_text()
    if "\nOPTIMISATIONS = " not in text:  # another Brian2 makefile layout: leave the project as it is
        return 0
    # `omp simd` lets GCC vectorize the block test (an OR over chars it otherwise keeps scalar);
    # -fopenmp-simd honours only simd pragmas, it starts no threads
    makefile.write_text(text.replace("\nOPTIMISATIONS = ", "\nOPTIMISATIONS = -fopenmp-simd ", 1))
    changed = 0
    for path in sorted((folder / "code_objects").glob("*_spike_thresholder_codeobject.cpp")):
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
