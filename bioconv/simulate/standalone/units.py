"""How bioconv's standalone device compiles a generated project: which headers go into a precompiled
header, and which code objects are merged into a few translation units.

Both only decide how the sources Brian2 generated are compiled; neither changes a generated file.
A merged unit is a new source that holds the code objects' code, each in a namespace of its own.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

PCH = "bioconv_pch.h"
UNIT = "bioconv_unit"
# objects.cpp only allocates, reads, parses and writes arrays (no arithmetic on a simulated value):
# compiled at -O0, in half the time of -O1 (MNIST ConvNet: 0.9 s against 1.8 s); its loops, which
# run once per launch and mostly hand whole arrays to the C library, cost milliseconds either way.
# Everything else keeps Brian2's flags, since another optimization level can round differently (e.g.
# no fused multiply-adds at -O1).
LOW_OPT = "objects.cpp"
LOW_OPT_FLAG = "-O0"
# A precompiled header is compiled before any source can start (1.5 s for a ConvNet project: the
# standard headers and objects.h) and saves each C++ source the 0.1-0.25 s of reading them: it pays
# for itself only from about 8 sources per core. Brian2's ~60 code objects, one source each, are far
# above that; merged into a unit per core they are below it (a ConvNet project of 8 sources on 2
# cores compiles in 2.5 s without the header and 3.1 s with it).
PCH_MIN_SOURCES_PER_CORE = 8

_INCLUDE = re.compile(r'^#include\s*([<"][^>"]+[>"])', re.M)
# Headers a merged code object may include: Brian2's own and the standard library's. A code object
# that includes anything else (a user's header, which may define macros) is compiled on its own.
_OWN_HEADER = re.compile(r'^"(?:(?:brianlib|code_objects)/[\w./]+|objects\.h|network\.h|run\.h|synapses_classes\.h'
                         r'|randomkit\.h)"$|^<(?:\w+|(?:assert|limits|math|stdint|stdio|stdlib|string|time)\.h)>$')
_DECLARATION = re.compile(r"^void (\w+)\(\);$", re.M)
_HEADER_LINE = re.compile(r"^(?:#ifndef \w+|#define \w+|#endif|void \w+\(\);|\s*)$")
_LEADING_INCLUDES = re.compile(r'(?:[ \t]*\n|#include\s*[<"][^>"]+[>"][ \t]*\n)*')
_MACRO = re.compile(r"^[ \t]*#[ \t]*define[ \t]+(\w+)", re.M)
_MAIN_SOURCES = ("main.cpp", "objects.cpp", "network.cpp", "run.cpp")


def precompiled_header(folder: Path, sources: list[str]) -> list[str]:
    """Write ``folder/PCH`` with the headers that at least half of the project's code objects and main
    sources include (none of a single code object's own), and return them; [] writes nothing.

    The header is force-included (``-include``) before every C++ source; it holds only headers that
    most sources include anyway, all guarded, so a source sees the same declarations as before. If
    GCC cannot use the precompiled file (other flags, other compiler) it reads the header as text:
    slower, never different.
    """
    folder = Path(folder)
    paths = [folder / s for s in sources if s.startswith("code_objects/") or s in _MAIN_SOURCES]
    counts, first_seen = Counter(), {}
    for src in paths:
        for k, inc in enumerate(dict.fromkeys(_INCLUDE.findall(src.read_text()))):
            counts[inc] += 1
            first_seen.setdefault(inc, (len(first_seen), k))
    shared = [inc for inc in sorted(counts, key=first_seen.get)
              if counts[inc] * 2 >= len(paths) and "code_objects/" not in inc]
    if shared:
        _write_if_changed(folder / PCH, "#pragma once\n" + "".join(f"#include {inc}\n" for inc in shared))
    return [inc.strip('<>"') for inc in shared]


def compile_order(folder: Path, sources: list[str]) -> list[str]:
    """``sources`` largest first: make starts the objects of a parallel build in the order it lists
    them, and the longest compiles (the merged units) started last leave one core idle at the end
    (ConvNet project on 2 cores: 3.3 s in Brian2's order, 2.8 s largest first). Only the order of
    the build: the objects are linked in Brian2's order (which fixes their static initializers')."""
    folder = Path(folder)
    size = {s: (folder / s).stat().st_size if (folder / s).exists() else 0 for s in sources}
    return sorted(sources, key=lambda s: -size[s])


def header_pays(sources: list[str], cores: int) -> bool:
    """Whether a precompiled header shortens the compile of ``sources`` on ``cores`` parallel jobs."""
    cpp = sum(1 for s in sources if s.endswith(".cpp"))
    return cpp > PCH_MIN_SOURCES_PER_CORE * max(1, int(cores))


def _leading_includes(code: str) -> tuple[list[str], str]:
    """The includes of a generated source's opening block, and the rest of it."""
    head = _LEADING_INCLUDES.match(code).group(0)
    return [m.group(1) for m in _INCLUDE.finditer(head)], code[len(head):]


def mergeable(src: Path) -> bool:
    """A code object whose header only declares functions, that includes only Brian2's and the
    standard headers, and only in its opening block (they move to the top of the unit)."""
    header = src.with_suffix(".h")
    if not (src.suffix == ".cpp" and header.exists()
            and all(_HEADER_LINE.match(line) for line in header.read_text().splitlines())):
        return False
    includes, body = _leading_includes(src.read_text())
    return all(_OWN_HEADER.match(inc) for inc in includes) and "#include" not in body


def unit_source(files: list[Path]) -> str:
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


def merge_code_objects(folder: Path, sources: list[str], units: int) -> tuple[list[str], int]:
    """Merge the project's mergeable code objects into ``units`` new translation units (spread by
    size, largest first). Returns the project's new source list and how many code objects were
    merged (0: the list is unchanged).

    A ConvNet project has about 60 code objects of a few lines each; every one of them costs its
    compiler start and header load (about 0.13 s even with a precompiled header), which was most of
    the compile. The code of each object is unchanged and compiled with the same flags: it sits in a
    namespace of its own, the macros it defines are restored after it, and its functions are called
    through the names its header declares. A code object whose header declares anything else than
    such functions, or that includes other headers than Brian2's and the standard library's, or any
    header after its opening block, is compiled on its own.
    """
    folder = Path(folder)
    candidates = [folder / s for s in sources if s.startswith("code_objects/") and mergeable(folder / s)]
    if len(candidates) < 2:
        return list(sources), 0
    n = max(1, int(units))
    groups, sizes = [[] for _ in range(n)], [0] * n
    size = {src: src.stat().st_size for src in candidates}
    for src in sorted(candidates, key=size.get, reverse=True):
        k = sizes.index(min(sizes))
        groups[k].append(src)
        sizes[k] += size[src]
    merged = set(candidates)
    new_sources = [s for s in sources if folder / s not in merged]
    for k, files in enumerate(g for g in groups if g):
        name = f"code_objects/{UNIT}_{k}.cpp"
        _write_if_changed(folder / name, unit_source(sorted(files)))
        new_sources.append(name)
    return new_sources, len(candidates)


def _write_if_changed(path: Path, text: str):
    """Write ``text`` unless the file already holds it: a rebuild of an unchanged project then
    recompiles nothing (make goes by time stamps), as Brian2's own writer does for its sources."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
