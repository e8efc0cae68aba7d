"""Coding schemes and input encoders: the seam where a new code (rate, TTFS, ...) plugs in.

- `schemes`: the registry of coding schemes (`CodingScheme` subclasses); ``"rate"`` (`RateCoding`),
  ``"ttfs"`` (`TTFSCoding`, seed 004), ``"css"`` (`CSSCoding`, seed 002).
  `scheme(name, **params)` makes one with validated parameters.
- `encoders`: the registry of input encoders (`Encoder` instances): ``regular``, ``poisson``,
  ``current``, ``phase`` (rate coding's weighted-spike phase code, `bioconv.coding.phase`),
  ``latency`` (TTFS), ``css`` and ``css_greedy`` (CSS).

A new scheme: a module defining a `CodingScheme` subclass registered with
``@schemes.register("name")`` (imported below so that it registers), its models in ``equations/``,
and tests/test_coding_conformance.py picks it up. A new encoder: an `Encoder` subclass registered
with ``encoders.register(name, instance)``.
"""
from .encoders import Encoder, encoders
from .scheme import METRICS, CodingScheme, Param, check_batch, check_labels, from_params, scheme, schemes
from .phase import PhaseEncoder
from .rate import RateCoding
from .ttfs import LatencyEncoder, TTFSCoding
from .css import CSSCoding, CSSEncoder

__all__ = ["CSSCoding", "CSSEncoder", "CodingScheme", "Encoder", "LatencyEncoder", "METRICS", "Param", "PhaseEncoder", "RateCoding",
           "TTFSCoding", "check_batch", "check_labels", "encoders", "from_params", "scheme", "schemes"]
