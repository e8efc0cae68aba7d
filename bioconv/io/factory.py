"""A user's torch network from a factory: ``package.module:factory`` or ``path/to/file.py:factory``,
called without arguments. The user's code runs: this is for the user's own files."""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from ..errors import BioconvError

USAGE = "MODEL must be 'package.module:factory' or 'path/to/file.py:factory'"


def load_model(spec: str):
    """Call the factory ``spec`` names and return the torch module it builds."""
    where, sep, name = str(spec).rpartition(":")
    if not sep or not where or not name.isidentifier():
        raise BioconvError(f"{USAGE}, got {spec!r}")
    if where.endswith(".py") or "/" in where or "\\" in where:
        module = _module_from_file(Path(where), spec)
    else:
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError as err:
            raise BioconvError(f"model {spec!r}: cannot import module {where!r} ({err}); {USAGE}") from None
    factory = getattr(module, name, None)
    if factory is None:
        found = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
        raise BioconvError(f"model {spec!r}: {where!r} has no {name!r}; callables there: {found}")
    if not callable(factory):
        raise BioconvError(f"model {spec!r}: {name!r} in {where!r} is a {type(factory).__name__}, not a factory")
    try:
        model = factory()
    except Exception as err:
        raise BioconvError(f"model {spec!r}: calling {name}() failed: {type(err).__name__}: {err}") from err
    if not hasattr(model, "state_dict") or not hasattr(model, "eval"):
        raise BioconvError(f"model {spec!r}: {name}() returned a {type(model).__name__}, not a torch nn.Module")
    return model


def _module_from_file(path: Path, spec: str):
    if not path.is_file():
        raise BioconvError(f"model {spec!r}: file {str(path)!r} does not exist")
    module_name = f"bioconv_user_model_{abs(hash(str(path.resolve())))}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module  # torch.fx and dataclasses look modules up by name
    try:
        loader_spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[module_name]
        raise BioconvError(f"model {spec!r}: running {str(path)!r} failed: {type(err).__name__}: {err}") from err
    return module
