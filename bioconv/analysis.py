"""Analytic rate formulas of ../shared/FORMULAS.md, sections 2-6, on Brian2 quantities.

Every function takes and returns Brian2 quantities (scalars or arrays, broadcast with numpy rules)
and checks the dimensions of its inputs, naming the offending parameter. Potentials are absolute
(``EL``, ``v_th``, ``v_reset`` as the model files define them) unless a docstring says otherwise.
"""
from __future__ import annotations

import numpy as np
from brian2 import Hz, Quantity, amp, coulomb, farad, second, siemens, volt
from brian2.units.fundamentalunits import DIMENSIONLESS

from .errors import ParameterError
from .units import check_quantity

__all__ = [
    "lif_rate", "lif_current_for_rate", "rheobase", "perfect_integrator_rate", "regular_input_potential",
    "regular_input_count", "regular_input_rate_exact", "regular_input_rate_linear", "slope",
    "bias_from_leak", "bias_from_leak_small", "min_firing_drive", "leak_for_bias", "kernel_charge",
    "kernel_weight_for_charge", "kernel_mean_current", "poisson_count_variance", "poisson_rate_std",
    "counting_bound",
]

_V, _I, _C, _G, _S, _F, _Q = volt.dim, amp.dim, farad.dim, siemens.dim, second.dim, Hz.dim, coulomb.dim


def _q(value, dim, name, fn, **kw):
    return check_quantity(value, dim, name, f"bioconv.analysis.{fn}", **kw)


# --- section 2: rate under constant current -----------------------------------------------------

def rheobase(Cm, gl, EL, v_th):
    """Smallest constant current that makes a LIF fire: ``gl (v_th - EL)``."""
    gl = _q(gl, _G, "gl", "rheobase", nonnegative=True)
    _q(Cm, _C, "Cm", "rheobase", positive=True)
    return gl * (_q(v_th, _V, "v_th", "rheobase") - _q(EL, _V, "EL", "rheobase"))


def lif_rate(I, Cm, gl, EL, v_th, v_reset, tau_ref):
    """Firing rate of a LIF under constant current ``I`` (seed 000; FORMULAS §2).

    ``f = 1 / (tau_ref + tau_m ln((Rm I + EL - v_reset) / (Rm I + EL - v_th)))`` above rheobase,
    0 below. ``gl = 0`` gives the perfect integrator's rate.
    """
    fn = "lif_rate"
    I = _q(I, _I, "I", fn)
    Cm = _q(Cm, _C, "Cm", fn, positive=True)
    gl = _q(gl, _G, "gl", fn, nonnegative=True)
    EL, v_th, v_reset = _q(EL, _V, "EL", fn), _q(v_th, _V, "v_th", fn), _q(v_reset, _V, "v_reset", fn)
    tau_ref = _q(tau_ref, _S, "tau_ref", fn, nonnegative=True)
    if np.any(np.asarray(v_reset >= v_th)):
        raise ParameterError(f"bioconv.analysis.{fn}: v_reset must lie below v_th")
    I_, Cm_, gl_, EL_, th_, re_, tr_ = np.broadcast_arrays(
        *(np.asarray(x, dtype=float) for x in (I, Cm, gl, EL, v_th, v_reset, tau_ref)))
    isi = np.full(I_.shape, np.inf)
    leaky = gl_ > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        drive = np.where(leaky, I_ / np.where(leaky, gl_, 1.0) + EL_, np.nan)  # Rm I + EL: the asymptote
        fires = leaky & (drive > th_)
        isi[fires] = tr_[fires] + (Cm_[fires] / gl_[fires]) * np.log(
            (drive[fires] - re_[fires]) / (drive[fires] - th_[fires]))
        pi = ~leaky & (I_ > 0)
        isi[pi] = tr_[pi] + Cm_[pi] * (th_[pi] - re_[pi]) / I_[pi]
    rate = np.where(np.isfinite(isi), 1.0 / isi, 0.0)
    return Quantity(rate[()] if rate.ndim == 0 else rate, dim=_F)


def lif_current_for_rate(f, Cm, gl, EL, v_th, v_reset, tau_ref):
    """Inverse of `lif_rate`: the constant current that gives rate ``f`` (0 < f < 1/tau_ref)."""
    fn = "lif_current_for_rate"
    f = _q(f, _F, "f", fn, positive=True)
    Cm, gl = _q(Cm, _C, "Cm", fn, positive=True), _q(gl, _G, "gl", fn, nonnegative=True)
    EL, v_th, v_reset = _q(EL, _V, "EL", fn), _q(v_th, _V, "v_th", fn), _q(v_reset, _V, "v_reset", fn)
    tau_ref = _q(tau_ref, _S, "tau_ref", fn, nonnegative=True)
    if np.any(np.asarray(v_reset >= v_th)):
        raise ParameterError(f"bioconv.analysis.{fn}: v_reset must lie below v_th")
    free = 1.0 / f - tau_ref  # time spent charging from v_reset to v_th
    if np.any(np.asarray(free) <= 0):
        raise ParameterError(f"bioconv.analysis.{fn}: rate f must stay below 1/tau_ref")
    # Rm I + EL - v_reset = E (Rm I + EL - v_th), E = exp(free/tau_m), solved for I in the form that
    # neither overflows at low rates (E huge) nor divides by zero without leak (gl -> 0 limit).
    x = np.asarray(free * gl / Cm, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        per_gl = np.where(x > 0, np.asarray(gl, dtype=float) / np.expm1(np.where(x > 0, x, 1.0)),
                          np.asarray(Cm / free, dtype=float))
    return gl * (v_th - EL) + Quantity(per_gl, dim=_G) * (v_th - v_reset)


def perfect_integrator_rate(I, Cm, v_th, v_reset, tau_ref):
    """Rate of the non-leaky integrator: ``1 / (tau_ref + Cm (v_th - v_reset) / I)`` for I > 0."""
    v_reset = _q(v_reset, _V, "v_reset", "perfect_integrator_rate")
    return lif_rate(I, Cm, 0 * siemens, v_reset, v_th, v_reset, tau_ref)


# --- section 3: linear LIF with delta synapses and regular input (seed 003) ---------------------
# Potentials here are relative to EL = v_reset = 0, as in seed 003.

def regular_input_potential(n, w, f_in, Cm, gl):
    """V after ``n`` regular input spikes of total charge ``w`` at ``f_in``, from V = 0 (eq. 5, 26)."""
    fn = "regular_input_potential"
    w, f_in = _q(w, _Q, "w", fn), _q(f_in, _F, "f_in", fn, positive=True)
    Cm, gl = _q(Cm, _C, "Cm", fn, positive=True), _q(gl, _G, "gl", fn, nonnegative=True)
    n = np.asarray(_q(n, DIMENSIONLESS, "n", fn, nonnegative=True), dtype=float)
    a = np.asarray(gl / (Cm * f_in), dtype=float)  # decay exponent per input period, 1/(f_in tau_m)
    with np.errstate(invalid="ignore", divide="ignore"):
        growth = np.where(a > 0, -np.expm1(-n * a) / np.where(a > 0, -np.expm1(-a), 1.0), n)
    return w / Cm * growth


def regular_input_count(w, f_in, Cm, gl, v_th):
    """Smallest number of regular inputs after which V >= v_th (eq. 39-41); ``inf`` if never.

    ``w`` is the summed charge of the simultaneous input spikes, ``v_th`` relative to reset.
    """
    fn = "regular_input_count"
    w, f_in = _q(w, _Q, "w", fn), _q(f_in, _F, "f_in", fn, positive=True)
    Cm, gl = _q(Cm, _C, "Cm", fn, positive=True), _q(gl, _G, "gl", fn, nonnegative=True)
    v_th = _q(v_th, _V, "v_th", fn, positive=True)
    ratio = np.asarray(v_th * Cm / w, dtype=float)  # threshold in units of one input's jump
    a = np.asarray(gl / (Cm * f_in), dtype=float)
    ratio, a = np.broadcast_arrays(ratio, a)
    n = np.full(ratio.shape, np.inf)
    positive = ratio > 0
    nonleaky = positive & (a == 0)
    n[nonleaky] = np.ceil(ratio[nonleaky] - 1e-12)
    leaky = positive & (a > 0)
    # (1 - exp(-n a)) / (1 - exp(-a)) >= ratio  <=>  n >= -ln(1 - ratio (1 - exp(-a))) / a
    arg = 1.0 - ratio[leaky] * -np.expm1(-a[leaky])
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.where(arg > 0, -np.log(np.where(arg > 0, arg, 1.0)) / a[leaky], np.inf)
    # The tolerance keeps exact integer solutions (V lands exactly on threshold) from rounding up.
    n[leaky] = np.ceil(need - 1e-9)
    n = np.maximum(n, 1.0)
    return n[()] if n.ndim == 0 else n


def regular_input_rate_exact(w, f_in, Cm, gl, v_th):
    """Output rate ``f_in / n`` of a LIF reset to zero after each spike (eq. 12 with eq. 39-41).

    ``w``: charges of the inputs (summed over the last axis when it is an array of synapses), all
    firing together at ``f_in``. Exact for reset-to-zero with tau_ref below one input period.
    """
    w = _q(w, _Q, "w", "regular_input_rate_exact")
    total = Quantity(np.sum(np.asarray(w), axis=-1), dim=_Q) if np.ndim(w) else w
    n = regular_input_count(total, f_in, Cm, gl, v_th)
    return f_in / n


def slope(Cm, v_th):
    """Activation slope ``k = 1/(v_th Cm)`` of the linear LIF (Table VII), in Hz per ampere."""
    return 1.0 / (_q(v_th, _V, "v_th", "slope", positive=True) * _q(Cm, _C, "Cm", "slope", positive=True))


def regular_input_rate_linear(w, f, Cm, gl, v_th, b=None):
    """Linear law ``k max(0, sum_i w_i f_i + b)`` (eq. 14 with Table VII's bias).

    ``w`` and ``f``: per-input charges and rates (last axis = inputs). ``b`` defaults to the leak's
    exact bias `bias_from_leak`. Without the bias term (``b=0``) this is eq. 14 verbatim.
    """
    fn = "regular_input_rate_linear"
    w, f = _q(w, _Q, "w", fn), _q(f, _F, "f", fn, nonnegative=True)
    drive = Quantity(np.sum(np.asarray(w) * np.asarray(f), axis=-1), dim=_I)
    total_w = Quantity(np.sum(np.asarray(w), axis=-1), dim=_Q)
    _q(gl, _G, "gl", fn, nonnegative=True)
    b = bias_from_leak(total_w, Cm, gl, v_th) if b is None else _q(b, _I, "b", fn)
    return slope(Cm, v_th) * np.maximum(drive + b, 0 * amp)


def bias_from_leak(w_sum, Cm, gl, v_th, T_w=None):
    """ReLU bias encoded by the leak (Table VII; eq. 37 for a window ``T_w``, eq. 38 for T_w -> inf).

    ``b = sum w / (tau_m ln(1 - sum w (1 - exp(-T_w/tau_m)) / (Cm v_th)))`` (negative). When one
    input volley alone reaches threshold (that argument <= 0) any input rate fires: ``b = 0``.
    Without leak the bias is 0 for an infinite window and ``-Cm v_th / T_w`` (the gl -> 0 limit)
    for a finite one.
    """
    fn = "bias_from_leak"
    w_sum = _q(w_sum, _Q, "w_sum", fn, positive=True)
    Cm, gl = _q(Cm, _C, "Cm", fn, positive=True), _q(gl, _G, "gl", fn, nonnegative=True)
    v_th = _q(v_th, _V, "v_th", fn, positive=True)
    T = None if T_w is None else _q(T_w, _S, "T_w", fn, positive=True)
    rate = np.asarray(gl / Cm, dtype=float)  # 1/tau_m
    window = 1.0 if T is None else -np.expm1(-np.asarray(T, dtype=float) * rate)
    x = np.asarray(w_sum / (Cm * v_th), dtype=float) * window
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.where(x < 1, np.asarray(w_sum, dtype=float) * rate / np.log1p(-np.where(x < 1, x, 0.0)), 0.0)
        no_leak = 0.0 if T is None else -np.asarray(Cm * v_th / T, dtype=float)
        b = np.where(rate == 0, no_leak, b)
    return Quantity(b[()] if np.ndim(b) == 0 else b, dim=_I)


def bias_from_leak_small(gl, v_th):
    """Small-input form of Table VII's bias, ``b ~ -gl v_th`` (valid for sum w << Cm v_th)."""
    return -_q(gl, _G, "gl", "bias_from_leak_small", nonnegative=True) * _q(v_th, _V, "v_th",
                                                                          "bias_from_leak_small")


def min_firing_drive(w_sum, Cm, gl, v_th, T_w=None):
    """Smallest drive ``sum_i w_i f_i`` that fires within ``T_w`` (eq. 37; eq. 38 if T_w is None)."""
    return -bias_from_leak(w_sum, Cm, gl, v_th, T_w)


def leak_for_bias(b, w_sum, Cm, v_th):
    """Leak conductance that encodes a negative ReLU bias ``b`` (inverse of `bias_from_leak`, T_w -> inf).

    ``bias_from_leak`` is proportional to gl: ``b = gl * w_sum / (Cm ln(1 - w_sum/(Cm v_th)))``.
    """
    fn = "leak_for_bias"
    b = _q(b, _I, "b", fn)
    if np.any(np.asarray(b) > 0):
        raise ParameterError(f"bioconv.analysis.{fn}: a leak encodes only negative biases (b <= 0); "
                             f"use a bias current for positive ones")
    per_siemens = bias_from_leak(w_sum, Cm, 1 * siemens, v_th)
    return b / per_siemens * siemens


# --- section 4: synaptic kernels -----------------------------------------------------------------

_KERNEL_WEIGHT_DIM = {"delta": _Q, "exponential": _I, "alpha": _I}


def _kernel(kernel, fn):
    if kernel not in _KERNEL_WEIGHT_DIM:
        raise ParameterError(f"bioconv.analysis.{fn}: unknown kernel {kernel!r}; "
                             f"known: {sorted(_KERNEL_WEIGHT_DIM)}")
    return _KERNEL_WEIGHT_DIM[kernel]


def kernel_charge(kernel, w, tau_s=None):
    """Charge one spike delivers: ``w`` (delta, w in coulomb) or ``w tau_s`` (exponential, alpha)."""
    fn = "kernel_charge"
    w = _q(w, _kernel(kernel, fn), "w", fn)
    if kernel == "delta":
        return w
    return w * _q(tau_s, _S, "tau_s", fn, positive=True)


def kernel_weight_for_charge(kernel, q, tau_s=None):
    """Kernel amplitude that delivers charge ``q`` per spike (inverse of `kernel_charge`)."""
    fn = "kernel_weight_for_charge"
    _kernel(kernel, fn)
    q = _q(q, _Q, "q", fn)
    if kernel == "delta":
        return q
    return q / _q(tau_s, _S, "tau_s", fn, positive=True)


def kernel_mean_current(kernel, w, f, tau_s=None):
    """Mean synaptic current at input rate ``f``: charge per spike times ``f``."""
    return kernel_charge(kernel, w, tau_s) * _q(f, _F, "f", "kernel_mean_current", nonnegative=True)


# --- section 6: counting and Poisson variance ----------------------------------------------------

def poisson_count_variance(f, T):
    """Variance of a Poisson spike count in a window ``T`` at rate ``f``: ``f T`` (dimensionless)."""
    fn = "poisson_count_variance"
    return _q(f, _F, "f", fn, nonnegative=True) * _q(T, _S, "T", fn, positive=True)


def poisson_rate_std(f, T):
    """Standard deviation of the rate estimate ``N/T`` for a Poisson train: ``sqrt(f / T)``."""
    fn = "poisson_rate_std"
    return np.sqrt(_q(f, _F, "f", fn, nonnegative=True) / _q(T, _S, "T", fn, positive=True))


def counting_bound(T):
    """Bound on the rate error of counting a regular train in a window ``T``: ``|f - N/T| < 1/T``."""
    return 1.0 / _q(T, _S, "T", "counting_bound", positive=True)
