"""Exceptions raised by bioconv; each message names the culprit (model, field, layer, file)."""


class BioconvError(Exception):
    """Base class of bioconv's errors."""


class ModelError(BioconvError, ValueError):
    """A model file in equations/ is unknown, malformed or unit-inconsistent."""


class ParameterError(BioconvError, ValueError):
    """A physical parameter is missing, unit-less, of the wrong dimension or out of range."""


class RunTimeLimitError(BioconvError, TimeoutError):
    """A launched simulation binary ran past its wall-time limit and was killed."""
