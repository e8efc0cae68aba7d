"""bioconv: continuous-time, biophysical ANN-to-SNN conversion on Brian2."""
from . import analysis, data, models, zoo
from .converter import SNN, EvaluationResult, convert, load_weights
from .errors import BioconvError, ModelError, ParameterError
from .graph import UnsupportedLayerError
from .io import load
from .optional import MissingDependencyError

__version__ = "0.1.0"
__all__ = ["SNN", "BioconvError", "EvaluationResult", "MissingDependencyError", "ModelError", "ParameterError",
           "UnsupportedLayerError", "analysis", "convert", "data", "load", "load_weights", "models", "zoo"]
