"""bioconv: continuous-time, biophysical ANN-to-SNN conversion on Brian2."""
from . import analysis, models
from .errors import BioconvError, ModelError, ParameterError

__version__ = "0.1.0"
__all__ = ["BioconvError", "ModelError", "ParameterError", "analysis", "models"]
