"""bioconv's Brian2 device, ``bioconv_standalone``: Brian2's C++ standalone device with the code
generation that a compile-once, run-many converted network needs, each part a Brian2 preference
(``devices.bioconv_standalone.*``, all on by default):

- ``block_thresholds``: threshold tests on blocks of neurons first, branch-free (templates/threshold.cpp);
- ``direct_propagation``: zero-delay events applied from the source's spikes, without the spike queue
  (templates/synapses.cpp, synapses_push_spikes.cpp);
- ``queue_setup_out_of_line``: the spike queue's set-up compiled once per unit (synapses_classes.cpp);
- ``skip_static_synapse_output``: Synapses arrays that no code changes during a run are not written
  at the end of a run launched with BIOCONV_SKIP_STATIC_OUTPUT set (bioconv's launcher sets it;
  Brian2's own ``device.run`` does not, so values read back through Brian2 are always there);
- ``precompiled_header`` and ``merge_code_objects``: how the project is compiled (makefile and
  source generation, `units`);
- ``openmp_simd``: ``-fopenmp-simd``, which lets GCC vectorize the blocked threshold tests.

The device also renders bioconv's shared-kernel convolution pathway (templates/bioconv_conv_pathway.cpp,
`bioconv.simulate.shared_conv`), which has no Brian2 counterpart: a network built with
``conv="shared"`` needs this device.

Templates the device does not change fall back to Brian2's. Every vendored template records in
UPSTREAM.toml the Brian2 template and versions it derives from; `drift` compares that with the
installed Brian2 (a test fails on any difference, and the device warns when it is activated).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
import tomllib
from pathlib import Path

import brian2
from brian2 import prefs
from brian2.codegen.cpp_prefs import get_compiler_and_args
from brian2.codegen.targets import codegen_targets
from brian2.core.preferences import BrianPreference
from brian2.core.variables import ArrayVariable
from brian2.devices.cpp_standalone.codeobject import CPPStandaloneCodeObject, openmp_pragma
from brian2.devices.cpp_standalone.device import CPPStandaloneDevice
from brian2.devices.device import all_devices, get_device
from brian2.synapses.synapses import Synapses
from brian2.utils.logger import get_logger

from .. import limits
from ...errors import RunTimeLimitError
from . import units

logger = get_logger(__name__)
NAME = "bioconv_standalone"
HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
BLOCK = 16  # neurons per branch-free threshold test (a 16-byte vector of chars)

prefs.register_preferences(
    f"devices.{NAME}",
    "Code generation of bioconv's standalone device (each part can be switched off)",
    block_thresholds=BrianPreference(
        default=True, docs="Test thresholds on blocks of neurons without a branch first (vectorized); only a "
                           "block with a spike runs Brian2's loop. Applies where the condition calls no function."),
    direct_propagation=BrianPreference(
        default=True, docs="Apply the events of a zero-delay pathway straight from the source's spikes, "
                           "without copying them through the spike queue (no OpenMP)."),
    queue_setup_out_of_line=BrianPreference(
        default=True, docs="Compile the spike queue's set-up once per translation unit (GCC-compatible compilers)."),
    skip_static_synapse_output=BrianPreference(
        default=True, docs="Do not write Synapses arrays that no code changes during a run at the end of a run "
                           "launched with the environment variable BIOCONV_SKIP_STATIC_OUTPUT set."),
    precompiled_header=BrianPreference(
        default=True, docs="Compile the headers most sources include once (GCC precompiled header), where "
                           "the project has enough C++ sources per core for it to pay (`units.header_pays`)."),
    merge_code_objects=BrianPreference(
        default=True, docs="Compile the code objects as a few translation units (compile_units) instead of "
                           "one each; objects.cpp at -O0."),
    compile_units=BrianPreference(
        default=0, docs="Translation units for merged code objects; 0: the cores this process may use."),
    openmp_simd=BrianPreference(
        default=True, docs="Compile with -fopenmp-simd (honours `omp simd` pragmas only; starts no thread)."),
)


# How Brian2's generated main seeds its random numbers: randomkit states up to brian2 2.7, C++
# <random> generators from 2.8 on.
_RANDOMKIT = "_mersenne_twister_states" in (
    Path(brian2.__file__).parent / "devices" / "cpp_standalone" / "templates" / "objects.cpp").read_text()


def _pref(name: str):
    return prefs[f"devices.{NAME}.{name}"]


def _gcc_like() -> bool:
    return get_compiler_and_args()[0] != "msvc"


def _pin_folder() -> str | None:
    """The folder of templates for the installed Brian2 version's own layout (objects.cpp), if any."""
    major_minor = ".".join(brian2.__version__.split(".")[:2])
    folder = f"brian2_{major_minor}"
    return folder if (TEMPLATES / folder).is_dir() else None


# ---------------------------------------------------------------------------- template helpers
_CALL = re.compile(r"\b(?!(?:if|while|for|switch)\b)[A-Za-z_]\w*\s*\(")  # a call, not a C++ statement


def _threshold_block(vector_code, owner) -> int:
    """Neurons per branch-free block for this thresholder, or 0 for Brian2's loop: the condition must
    only read values (a function call could draw a random number, and the condition is evaluated
    again when a block with a spike is scanned)."""
    if not _pref("block_thresholds"):
        return 0
    code = vector_code if isinstance(vector_code, str) else "\n".join(vector_code)  # Brian2 passes lines
    if _CALL.search(code):
        logger.info(f"block_thresholds does not apply to '{getattr(owner, 'name', owner)}': its condition "
                    "calls a function", "block_thresholds_not_applied")
        return 0
    return BLOCK


def _direct_propagation(pathway) -> bool:
    if not _pref("direct_propagation"):
        return False
    if openmp_pragma("with_openmp"):
        logger.warn("direct_propagation does not apply under OpenMP (devices.cpp_standalone.openmp_threads > 0): "
                    "synaptic events go through the spike queue", "direct_propagation_openmp", once=True)
        return False
    return True


def _direct_condition(queue: str) -> str:
    """C++ condition under which pathway ``queue``'s events skip the queue: one thread (one queue),
    every delay zero (the queue then hands the events on in the same step) and a single slot (no
    event of an earlier run with a delay is waiting in a later one). A pathway without synapses has
    no delay to read."""
    return (f"({queue}._nb_threads == 1 && ({queue}.sources.empty() || ({queue}.queue[0]->scalar_delay && "
            f"{queue}.queue[0]->delays[0] == 0 && {queue}.queue[0]->queue.size() == 1)))")


def _queue_setup_out_of_line() -> bool:
    return bool(_pref("queue_setup_out_of_line")) and _gcc_like()


def _static_output(var) -> bool:
    return var in getattr(get_device(), "_bioconv_static_outputs", ())


TEMPLATE_GLOBALS = {"bioconv_threshold_block": _threshold_block, "bioconv_direct_propagation": _direct_propagation,
                    "bioconv_direct_condition": _direct_condition,
                    "bioconv_queue_setup_out_of_line": _queue_setup_out_of_line,
                    "bioconv_static_output": _static_output}


def _templater():
    templater = CPPStandaloneCodeObject.templater.derive(__package__, templates_dir="templates",
                                                         env_globals=TEMPLATE_GLOBALS)
    pin = _pin_folder()
    if pin is not None:
        templater = templater.derive(__package__, templates_dir=f"templates/{pin}", env_globals=TEMPLATE_GLOBALS)
    return templater


class BioconvCodeObject(CPPStandaloneCodeObject):
    """Brian2's C++ standalone code object, rendered with bioconv's templates where it has one."""

    templater = _templater()
    class_name = NAME


codegen_targets.add(BioconvCodeObject)

# Code objects that set the network up (create synapses, set values) rather than run in it.
_SET_UP_TEMPLATES = {"synapses_create_array", "synapses_create_generator", "group_variable_set",
                     "group_variable_set_conditional"}


class BioconvStandaloneDevice(CPPStandaloneDevice):
    """Brian2's C++ standalone device with bioconv's code generation (module docstring).

    After a build, ``optimizations`` says what each part changed in this project.
    """

    def __init__(self):
        super().__init__()
        self.optimizations: dict[str, int] = {}
        self._bioconv_static_outputs: set = set()
        self._bioconv_written: list[str] = []  # files of the project only this device's build writes
        self._bioconv_unwritten: list[str] = []  # files Brian2's build would write and this one does not

    def activate(self, *args, **kwds):
        for problem in drift():
            logger.warn(problem, "template_drift", once=True)
        if _pref("skip_static_synapse_output") and _pin_folder() is None:
            logger.warn(f"skip_static_synapse_output cannot apply: bioconv has no objects.cpp for brian2 "
                        f"{brian2.__version__}; every array is written after each run", "no_objects_template",
                        once=True)
        super().activate(*args, **kwds)

    def code_object_class(self, codeobj_class=None, fallback_pref=None):
        if codeobj_class is None or codeobj_class is CPPStandaloneCodeObject:
            return BioconvCodeObject
        return codeobj_class

    def build(self, *args, **kwds):
        if _pref("openmp_simd") and "-fopenmp-simd" not in self.extra_compile_args:
            if _gcc_like():
                self.extra_compile_args.append("-fopenmp-simd")
            else:
                logger.warn("openmp_simd does not apply with MSVC", "openmp_simd_msvc", once=True)
        return super().build(*args, **kwds)

    def run(self, directory=None, results_directory=None, with_output=True, run_args=None):
        """Brian2's ``run``, with the binary killed past `limits.default_limit` ($BIOCONV_RUN_LIMIT):
        `RunTimeLimitError` then names the project instead of a hung caller."""
        limit = limits.default_limit()
        timeout = shutil.which("timeout")
        command = prefs.devices.cpp_standalone.run_cmd_unix
        if timeout is None or os.name == "nt":
            logger.warn("no 'timeout' command: the simulation binary runs without a wall-time limit", "no_timeout",
                        once=True)
            return super().run(directory, results_directory, with_output, run_args)
        prefs.devices.cpp_standalone.run_cmd_unix = ([timeout, "-s", "KILL", f"{limit:g}"]
                                                     + ([command] if isinstance(command, str) else list(command)))
        started = time.monotonic()
        try:
            return super().run(directory, results_directory, with_output, run_args)
        except RuntimeError as err:
            if time.monotonic() - started >= limit:
                raise RunTimeLimitError(
                    f"the simulation binary of project {str(directory or self.project_dir)!r} ran past its wall-time "
                    f"limit of {limit:g} s and was killed (raise ${limits.LIMIT_VARIABLE} if the run is just long)"
                ) from err
            raise
        finally:
            prefs.devices.cpp_standalone.run_cmd_unix = command

    def seed(self, seed=None):
        """Brian2's ``seed``, after which a launch may reseed at run time: with $BIOCONV_SEED = s the
        random numbers are those of a build seeded with s, so one compiled project serves every seed."""
        super().seed(seed)
        # one state per thread, counted when the binary runs (the thread count is a build setting)
        states = "brian::_mersenne_twister_states" if _RANDOMKIT else "brian::_random_generators"
        if _RANDOMKIT:  # brian2 < 2.8: randomkit states, seeded as Brian2's main.cpp seeds them
            reseed = "rk_seed(std::strtoul(_seed, 0, 10) + _i, brian::_mersenne_twister_states[_i]);"
        else:
            reseed = "brian::_random_generators[_i].seed(std::strtoull(_seed, 0, 10) + _i);"
        self.insert_code("main", f'{{ const char* _seed = std::getenv("BIOCONV_SEED"); // bioconv: seed of a launch\n'
                                 f"  if(_seed) for(size_t _i=0; _i<{states}.size(); _i++) {reseed} }}")

    def generate_objects_source(self, writer, *args, **kwds):
        self._bioconv_static_outputs = self._static_synapse_arrays() if _pref("skip_static_synapse_output") else set()
        return super().generate_objects_source(writer, *args, **kwds)

    def _static_synapse_arrays(self) -> set:
        """Synapses arrays that no code object running in the network writes: values set when the
        network is set up (connect, assignments) and then only read. A variable counts as written
        by every run-time code object that uses it unless Brian2 forbids writing it there (read-only
        or constant), so this errs on the side of writing."""
        written = set()
        for codeobj in self.code_objects.values():
            if codeobj.template_name in _SET_UP_TEMPLATES:
                continue
            template = getattr(codeobj.templater, codeobj.template_name)
            written |= {codeobj.variables[name] for name in template.writes_read_only}
            written |= set(getattr(codeobj.owner, "written_readonly_vars", set()))
            written |= {v for v in codeobj.variables.values()
                        if isinstance(v, ArrayVariable) and not (v.read_only or v.constant)}
        static = set()
        for var in self.dynamic_arrays:
            try:
                owner_is_synapses = isinstance(var.owner, Synapses)
            except ReferenceError:
                continue
            if owner_is_synapses and var not in written:
                static.add(var)
        return static

    def generate_makefile(self, writer, compiler, compiler_flags, linker_flags, nb_threads, debug):
        if compiler == "msvc":
            for name in ("precompiled_header", "merge_code_objects", "queue_setup_out_of_line"):
                if _pref(name):
                    logger.warn(f"{name} does not apply with MSVC", f"{name}_msvc", once=True)
            return super().generate_makefile(writer, compiler, compiler_flags, linker_flags, nb_threads, debug)
        folder = Path(self.project_dir)
        sources = sorted(writer.source_files)
        merged = 0
        all_sources = sources
        if _pref("merge_code_objects"):
            n_units = int(_pref("compile_units")) or _cores()
            sources, merged = units.merge_code_objects(folder, sources, n_units)
        headers = (units.precompiled_header(folder, all_sources)
                   if _pref("precompiled_header") and units.header_pays(sources, _cores()) else [])
        low_opt = [units.LOW_OPT] if merged and units.LOW_OPT in sources else []
        makefile = self.code_object_class().templater.makefile(
            None, None,
            source_files=" ".join(sources),
            build_order=" ".join(units.compile_order(folder, sources)),
            header_files=" ".join(sorted(writer.header_files)),
            compiler_flags=compiler_flags,
            compiler_debug_flags="-g -DDEBUG" if debug else "",
            linker_debug_flags="-g" if debug else "",
            linker_flags=linker_flags,
            rm_cmd="rm -f $(OBJS) $(PROGRAM) $(DEPS)",
            pch=units.PCH if headers else None,
            low_opt_sources=low_opt, low_opt_flag=units.LOW_OPT_FLAG)
        writer.write("makefile", makefile)
        compiled = [s for s in sources if s.endswith(".cpp")]
        self._bioconv_written = ([units.PCH, f"{units.PCH}.gch"] if headers else []) + [
            s[:-len(".cpp")] + ext for s in compiled for ext in (".d",) + ((".cpp", ".o") if units.UNIT in s else ())]
        self._bioconv_unwritten = ["make.deps"] + [s[:-len(".cpp")] + ".o" for s in writer.source_files
                                                   if s.endswith(".cpp") and s not in sources]
        self.optimizations = self._report(len(headers), merged)

    def delete(self, code=True, data=True, directory=True, force=False, **kwds):
        """Brian2's ``delete``, which also deletes the files only this device's build writes (dependency
        files, merged units, the precompiled header) and does not miss, or warn about (brian2 >= 2.10),
        those Brian2's build would have written and this one does not (make.deps, the objects of merged
        code objects)."""
        if code and self.project_dir is not None:
            folder = Path(self.project_dir)
            for name in self._bioconv_written:
                (folder / name).unlink(missing_ok=True)
            for name in self._bioconv_unwritten:  # Brian2 deletes these by name: let it find them
                if (folder / name).parent.is_dir() and not (folder / name).exists():
                    (folder / name).touch()
        return super().delete(code=code, data=data, directory=directory, force=force, **kwds)

    def _report(self, pch_headers: int, merged: int) -> dict[str, int]:
        """What each optimization changed in this project, from the generated code."""
        codeobjs = list(self.code_objects.values())
        blocked = sum(1 for c in codeobjs if c.template_name == "threshold"
                      and "bioconv: blocked threshold test" in c.code.cpp_file)
        direct = {c.owner.name for c in codeobjs if c.template_name == "synapses_push_spikes"
                  and "bioconv: events of a zero-delay pathway" in c.code.cpp_file}
        return {"thresholds": sum(1 for c in codeobjs if c.template_name == "threshold"),
                "thresholds_blocked": blocked,
                "pathways": sum(1 for c in codeobjs if c.template_name == "synapses_push_spikes"),
                "pathways_direct": len(direct),
                "conv_pathways_shared": sum(1 for c in codeobjs if c.template_name == "bioconv_conv_pathway"),
                "queue_setup_out_of_line": int(_queue_setup_out_of_line()),
                "static_synapse_arrays_skippable": len(self._bioconv_static_outputs),
                "precompiled_header_includes": pch_headers,
                "code_objects_merged": merged,
                "openmp_simd": int("-fopenmp-simd" in self.extra_compile_args)}


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


all_devices[NAME] = BioconvStandaloneDevice()


# ---------------------------------------------------------------------------- drift
def upstream_records() -> dict:
    with open(TEMPLATES / "UPSTREAM.toml", "rb") as f:
        return tomllib.load(f)


def drift() -> list[str]:
    """One message per vendored template whose recorded upstream does not match the installed
    Brian2: the upstream template changed, or this Brian2 version was never checked."""
    brian_templates = Path(brian2.__file__).parent / "devices" / "cpp_standalone" / "templates"
    version, pin = brian2.__version__, _pin_folder()
    problems = []
    for name, rec in upstream_records().items():
        folder = Path(rec["file"]).parent.name
        if folder.startswith("brian2_") and folder != pin:
            continue  # another Brian2 version's own template
        upstream = brian_templates / rec["upstream"]
        recorded = rec["sha256"].get(version)
        if recorded is None:
            problems.append(f"bioconv template '{rec['file']}' derives from Brian2's '{rec['upstream']}' as of "
                            f"brian2 {', '.join(rec['sha256'])}, not the installed {version}: compare the two and "
                            f"record the new upstream in UPSTREAM.toml")
        elif not upstream.exists() or _sha256(upstream) != recorded:
            problems.append(f"bioconv template '{rec['file']}': Brian2's '{rec['upstream']}' changed in brian2 "
                            f"{version} since it was derived: port the change and record the new upstream")
    return problems


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
