"""Converted networks as files: `save` / `load` (bioconv's own format, docs/network_file.md), and NIR
export and import (`to_nir`, `from_nir`: the Neuromorphic Intermediate Representation)."""
from .archive import NetworkFileError
from .network_file import ModelChangedWarning, load, save
from .nir_export import NIRExportError, NIRExportWarning, to_nir
from .nir_import import NIRImportError, from_nir

__all__ = ["ModelChangedWarning", "NIRExportError", "NIRExportWarning", "NIRImportError", "NetworkFileError",
           "from_nir", "load", "save", "to_nir"]
