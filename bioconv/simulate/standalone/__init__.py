"""bioconv's Brian2 standalone device (``bioconv_standalone``), registered on import."""
from .device import NAME, BioconvCodeObject, BioconvStandaloneDevice, drift

__all__ = ["NAME", "BioconvCodeObject", "BioconvStandaloneDevice", "drift"]
