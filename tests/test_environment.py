"""pyproject.toml and environment.yml pin the same Python 3.11 stack, and the installed one satisfies it."""
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement  # a dependency of pytest itself
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PY311 = {"python_version": "3.11", "python_full_version": "3.11.0"}
IGNORED = {"pytest", "pytest-xdist"}  # in the test extra, checked separately


def _pyproject():
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["project"]


def _pins_py311() -> dict:
    """canonical name -> SpecifierSet of the Python 3.11 stack: the dependencies that apply on 3.11, the
    torch extra and the nir extra (`make test` installs them, nir through the test extra;
    environment.yml is that stack)."""
    pins = {}
    extras = _pyproject()["optional-dependencies"]
    for line in _pyproject()["dependencies"] + extras["torch"] + extras["nir"]:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(PY311):
            name = canonicalize_name(req.name)
            assert name not in pins, f"pyproject.toml pins {req.name} twice for Python 3.11"
            pins[name] = req.specifier
    return pins


def _environment_yml() -> tuple[list[str], list[str]]:
    """(conda dependencies, pip dependencies) of environment.yml, read line by line (no pyyaml needed)."""
    conda, pip = [], []
    section = None  # None, "deps" or "pip"
    deps_indent = pip_indent = None
    for raw in (ROOT / "environment.yml").read_text().splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        text = line.strip()
        if indent == 0:
            section = "deps" if text == "dependencies:" else None
            continue
        if section is None or not text.startswith("- "):
            continue
        item = text[2:].strip()
        if section == "pip" and indent > pip_indent:
            pip.append(item)
            continue
        if deps_indent is None:
            deps_indent = indent
        section = "deps"
        if item == "pip:":
            section, pip_indent = "pip", indent
        elif indent == deps_indent:
            conda.append(item)
    return conda, pip


def _env_pins() -> dict:
    pins = {}
    for item in _environment_yml()[1]:
        if item.startswith("-e ") or item.startswith("--"):
            continue
        req = Requirement(item)
        assert req.marker is None, f"environment.yml pip line {item!r} has a marker; it is the Python 3.11 stack"
        name = canonicalize_name(req.name)
        assert name not in pins, f"environment.yml lists {req.name} twice"
        pins[name] = req.specifier
    return pins


def test_environment_yml_is_read():
    conda, pip = _environment_yml()
    assert "pip" in conda
    assert "-e ." in pip
    assert len(pip) >= 10


def test_environment_yml_python_is_311():
    conda, _ = _environment_yml()
    pythons = [c for c in conda if re.split(r"[=<>!~ ]", c)[0] == "python"]
    assert pythons == ["python=3.11"], pythons
    requires = _pyproject()["requires-python"]
    assert Version("3.11.0") in SpecifierSet(requires), f"requires-python {requires!r} excludes 3.11"


def test_pyproject_pins_for_py311_are_in_environment_yml():
    env = _env_pins()
    for name, spec in _pins_py311().items():
        assert name in env, f"{name}{spec} is pinned in pyproject.toml but missing from environment.yml"
        assert env[name] == spec, f"{name}: pyproject.toml says {spec!s}, environment.yml says {env[name]!s}"


def test_environment_yml_pins_are_in_pyproject():
    pins = _pins_py311()
    for name, spec in _env_pins().items():
        if name in IGNORED:
            continue
        assert name in pins, f"{name}{spec} is in environment.yml but not a Python 3.11 dependency in pyproject.toml"
        assert pins[name] == spec, f"{name}: environment.yml says {spec!s}, pyproject.toml says {pins[name]!s}"


def test_environment_yml_test_tools_match_test_extra():
    extra = {canonicalize_name(r.name): r.specifier
             for r in map(Requirement, _pyproject()["optional-dependencies"]["test"])}
    env = _env_pins()
    for name in IGNORED:
        assert env.get(name) == extra.get(name), f"{name}: environment.yml {env.get(name)}, test extra {extra.get(name)}"


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the pins checked here are the Python 3.11 stack")
@pytest.mark.parametrize("package", ["brian2", "numpy", "torch", "brian2cuda", "cython"])
def test_installed_version_satisfies_pin(package):
    spec = _pins_py311()[package]
    try:
        installed = metadata.version(package)
    except metadata.PackageNotFoundError:
        pytest.fail(f"{package} is pinned ({spec}) but not installed")
    # A local label (torch's "+cpu") satisfies "==2.13.0": PEP 440 ignores it for such specifiers.
    assert spec.contains(installed, prereleases=True), f"{package} {installed} does not satisfy {spec}"


def test_torch_is_an_extra_not_a_dependency():
    """torch for Python 3.12 is a download of several GB: bioconv must install without it."""
    deps = {canonicalize_name(Requirement(line).name) for line in _pyproject()["dependencies"]}
    extra = [Requirement(line) for line in _pyproject()["optional-dependencies"]["torch"]]
    assert "torch" not in deps
    assert [canonicalize_name(r.name) for r in extra] == ["torch"]


def test_installed_packages_satisfy_the_pins_of_this_python():
    """On either lane (3.11: brian2 2.7.1; >= 3.12: brian2 2.10.1), every dependency whose marker applies
    here is installed at a version its pin allows."""
    checked = []
    for line in _pyproject()["dependencies"]:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{req} applies to this Python ({sys.version.split()[0]}) but is not installed")
        assert req.specifier.contains(installed, prereleases=True), f"{req.name} {installed} does not satisfy {req}"
        checked.append(canonicalize_name(req.name))
    assert {"brian2", "brian2cuda", "numpy"} <= set(checked)
