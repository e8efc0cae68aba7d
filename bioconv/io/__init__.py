"""Converted networks as files: `save` / `load` (bioconv's own format, docs/network_file.md)."""
from .archive import NetworkFileError
from .network_file import ModelChangedWarning, load, save

__all__ = ["ModelChangedWarning", "NetworkFileError", "load", "save"]
