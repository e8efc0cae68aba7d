"""Pure-math tests of bioconv.analysis (FORMULAS.md sections 2-6); no simulation.

Every expected value is either computed by hand (arithmetic in a comment) or by an independent
numeric method (scipy's solve_ivp / quad, a brute-force loop, a seeded RNG), never by the function
under test itself.
"""
import math
import re

import numpy as np
import pytest
from brian2 import Hz, mV, ms, nF, nS, pA, pcoulomb, pF, second
from scipy.integrate import quad, solve_ivp

from bioconv import analysis as A
from bioconv.errors import ParameterError

# The conductance LIF of FORMULAS §2 used throughout: tau_m = 200 pF / 10 nS = 20 ms.
LIF = dict(Cm=200 * pF, gl=10 * nS, EL=-70 * mV, v_th=-50 * mV, v_reset=-70 * mV, tau_ref=2 * ms)
# Seed 003, Table II: gl = 3 nS, Cm = 1 nF (tau_m = 1/3 s), v_th = 1 mV, w = [0.3, 0.2] pC.
T2 = dict(Cm=1 * nF, gl=3 * nS, v_th=1 * mV)
W_SUM = 0.5 * pcoulomb


def _ref_lif_rate(I, Cm, gl, EL, v_th, v_reset, tau_ref):
    """Independent scalar implementation of FORMULAS §2, in plain SI floats."""
    if gl == 0:
        return 0.0 if I <= 0 else 1.0 / (tau_ref + Cm * (v_th - v_reset) / I)
    drive = I / gl + EL
    if drive <= v_th:
        return 0.0
    return 1.0 / (tau_ref + Cm / gl * math.log((drive - v_reset) / (drive - v_th)))


def _brute_count(jump, a, v_th, nmax=100_000):
    """Count regular inputs until V >= v_th: V <- V exp(-a) + jump (a = 1/(f_in tau_m)); inf if never."""
    decay = math.exp(-a)
    v, n = 0.0, 0
    while n < nmax:
        new = v * decay + jump
        n += 1
        if new >= v_th:
            return n
        if new <= v:  # converged below threshold: never fires
            return math.inf
        v = new
    return math.inf


# --- section 2: lif_rate, lif_current_for_rate, perfect_integrator_rate, rheobase --------------

def test_lif_rate_hand_value():
    # Rm I = 300 pA / 10 nS = 30 mV; Rm I + EL = -40 mV; ratio (-40+70)/(-40+50) = 30/10 = 3.
    # ISI = 2 ms + 20 ms * ln 3 = 2 + 21.97225 = 23.97225 ms -> f = 41.71489 Hz.
    f = A.lif_rate(300 * pA, **LIF)
    assert float(f / Hz) == pytest.approx(1.0 / (2e-3 + 20e-3 * math.log(3.0)), rel=1e-12)
    assert float(f / Hz) == pytest.approx(41.71489, rel=1e-6)
    # EL = -65 mV != v_reset: Rm I + EL = -35 mV; ratio (-35+70)/(-35+50) = 35/15 = 7/3;
    # ISI = 2 ms + 20 ms ln(7/3) = 2 + 16.94596 = 18.94596 ms -> f = 52.78170 Hz
    f2 = A.lif_rate(300 * pA, **(LIF | dict(EL=-65 * mV)))
    assert float(f2 / Hz) == pytest.approx(1.0 / (2e-3 + 20e-3 * math.log(7.0 / 3.0)), rel=1e-12)


def test_rheobase_hand_value():
    # gl (v_th - EL) = 10 nS * 20 mV = 200 pA
    assert float(A.rheobase(200 * pF, 10 * nS, -70 * mV, -50 * mV) / pA) == pytest.approx(200.0, rel=1e-12)


def test_lif_rate_zero_at_and_below_rheobase():
    # rheobase = 200 pA (see above): the asymptote Rm I + EL is then exactly v_th, never crossed.
    for I in [200 * pA, 199.9 * pA, 100 * pA, 0 * pA, -50 * pA]:
        assert float(A.lif_rate(I, **LIF) / Hz) == 0.0
    assert float(A.lif_rate(200.01 * pA, **LIF) / Hz) > 0.0


def test_lif_rate_saturates_at_inverse_refractory_period():
    # I = 1 uA: Rm I = 100 V, ln(1 + 20 mV / (100 V - 20 mV)) ~ 2e-4, * 20 ms = 4e-6 s, so
    # f = 1/(2 ms + 4 us) = 498.0 Hz; I = 1 mA: 1/(2 ms + 4 ns) = 499.999 Hz.
    f_sat = 1.0 / 2e-3
    currents = np.array([1e-9, 1e-8, 1e-7, 1e-6, 1e-3])  # A
    rates = np.asarray(A.lif_rate(currents * 1e12 * pA, **LIF) / Hz)
    assert np.all(np.diff(rates) > 0)
    assert np.all(rates < f_sat)
    assert rates[-1] == pytest.approx(f_sat, rel=1e-5)
    # I = 1 uA: ratio (Rm I + EL - v_reset)/(Rm I + EL - v_th) = 100 V / 99.98 V
    assert rates[-2] == pytest.approx(1.0 / (2e-3 + 20e-3 * math.log(100.0 / 99.98)), rel=1e-9)


def test_perfect_integrator_rate_hand_value():
    # Cm (v_th - v_reset) / I = 200 pF * 20 mV / 100 pA = 40 ms; f = 1/(2 ms + 40 ms) = 23.80952 Hz
    f = A.perfect_integrator_rate(100 * pA, 200 * pF, -50 * mV, -70 * mV, 2 * ms)
    assert float(f / Hz) == pytest.approx(1.0 / 42e-3, rel=1e-12)
    # tau_ref = 0: linear in I, f = I / (Cm (v_th - v_reset)) = 100 pA / 4 pC = 25 Hz
    f0 = A.perfect_integrator_rate(100 * pA, 200 * pF, -50 * mV, -70 * mV, 0 * ms)
    assert float(f0 / Hz) == pytest.approx(25.0, rel=1e-12)
    assert float(A.perfect_integrator_rate(0 * pA, 200 * pF, -50 * mV, -70 * mV, 2 * ms) / Hz) == 0.0


def test_lif_rate_without_leak_is_perfect_integrator():
    currents = np.array([-10.0, 0.0, 1.0, 50.0, 100.0, 1000.0, 1e5])
    lif = np.asarray(A.lif_rate(currents * pA, **(LIF | dict(gl=0 * nS))) / Hz)
    pi = np.asarray(A.perfect_integrator_rate(currents * pA, 200 * pF, -50 * mV, -70 * mV, 2 * ms) / Hz)
    # hand formula 1/(tau_ref + Cm dV / I), 0 for I <= 0
    ref = np.array([0.0 if I <= 0 else 1.0 / (2e-3 + 200e-12 * 0.02 / (I * 1e-12)) for I in currents])
    np.testing.assert_allclose(lif, ref, rtol=1e-12)
    np.testing.assert_allclose(pi, ref, rtol=1e-12)


def test_lif_rate_broadcasts():
    currents = np.array([50.0, 250.0, 300.0, 1000.0]).reshape(4, 1)  # pA
    leaks = np.array([0.0, 5.0, 10.0])  # nS
    rates = A.lif_rate(currents * pA, 200 * pF, leaks * nS, -70 * mV, -50 * mV, -70 * mV, 2 * ms)
    assert rates.shape == (4, 3)
    assert rates.dim == Hz.dim
    ref = np.array([[_ref_lif_rate(I * 1e-12, 200e-12, g * 1e-9, -0.07, -0.05, -0.07, 2e-3) for g in leaks]
                    for I in currents[:, 0]])
    np.testing.assert_allclose(np.asarray(rates / Hz), ref, rtol=1e-12)
    # a scalar in, a scalar (0-d) out
    assert np.ndim(A.lif_rate(300 * pA, **LIF)) == 0


@pytest.mark.parametrize("I_pA", [210.0, 300.0, 1000.0, 5000.0])
def test_lif_rate_matches_ode_threshold_crossing(I_pA):
    # Integrate tau_m dV/dt = -(V - EL) + Rm I (mV, ms) from v_reset until V = v_th.
    tau_m, EL, th, reset, rm_i = 20.0, -70.0, -50.0, -70.0, I_pA * 1e-12 / 10e-9 * 1e3

    def crossing(t, v):
        return v[0] - th
    crossing.terminal, crossing.direction = True, 1
    sol = solve_ivp(lambda t, v: [(-(v[0] - EL) + rm_i) / tau_m], (0.0, 1e4), [reset], events=crossing,
                    rtol=1e-11, atol=1e-12, method="DOP853")
    isi_ms = sol.t_events[0][0] + 2.0  # + tau_ref
    assert float(A.lif_rate(I_pA * pA, **LIF) / Hz) == pytest.approx(1e3 / isi_ms, rel=1e-7)


def test_lif_current_for_rate_round_trip():
    f = np.linspace(5.0, 400.0, 80)
    current = A.lif_current_for_rate(f * Hz, **LIF)
    assert current.dim == pA.dim
    # the current must exceed rheobase (200 pA) and grow with f
    assert np.all(np.asarray(current / pA) > 200.0) and np.all(np.diff(np.asarray(current)) > 0)
    # Independent inverse: the reference rate formula evaluated at the returned current.
    back = np.array([_ref_lif_rate(float(i), 200e-12, 10e-9, -0.07, -0.05, -0.07, 2e-3) for i in np.asarray(current)])
    np.testing.assert_allclose(back, f, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(A.lif_rate(current, **LIF) / Hz), f, rtol=1e-9)


def test_lif_current_for_rate_hand_value():
    # f = 1/(2 ms + 20 ms ln 3) is the rate at I = 300 pA (test_lif_rate_hand_value).
    f = 1.0 / (2e-3 + 20e-3 * math.log(3.0))
    assert float(A.lif_current_for_rate(f * Hz, **LIF) / pA) == pytest.approx(300.0, rel=1e-10)
    # no leak: I = Cm dV / (1/f - tau_ref) = 4 pC / 18 ms = 222.2222 pA at 50 Hz
    i0 = A.lif_current_for_rate(50 * Hz, **(LIF | dict(gl=0 * nS)))
    assert float(i0 / pA) == pytest.approx(4.0 / 18e-3, rel=1e-12)


@pytest.mark.parametrize("f", [500 * Hz, 600 * Hz, 1e4 * Hz])
def test_lif_current_for_rate_rejects_rate_at_or_above_saturation(f):
    # 1/tau_ref = 500 Hz
    with pytest.raises(ParameterError, match="1/tau_ref"):
        A.lif_current_for_rate(f, **LIF)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_lif_current_for_rate_low_rate():
    # 1/f - tau_ref = 99.998 s = 4999.9 tau_m: the needed drive is rheobase (200 pA) plus
    # (v_th - v_reset) gl / expm1(4999.9), i.e. 200 pA to double precision.
    i = A.lif_current_for_rate(0.01 * Hz, **LIF)
    assert float(i / pA) == pytest.approx(200.0, rel=1e-9)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_lif_current_for_rate_mixed_leak_array():
    i = A.lif_current_for_rate(50 * Hz, 200 * pF, np.array([0.0, 10.0]) * nS, -70 * mV, -50 * mV, -70 * mV, 2 * ms)
    # gl = 0: 4 pC / 18 ms = 222.2222 pA (as in test_lif_current_for_rate_hand_value)
    assert float(i[0] / pA) == pytest.approx(4.0 / 18e-3, rel=1e-12)


# --- section 3: regular delta-synapse input (seed 003) ------------------------------------------

@pytest.mark.parametrize("f_in_Hz, gl_nS", [(10.0, 3.0), (2.0, 3.0), (50.0, 30.0), (10.0, 0.0)])
def test_regular_input_potential_brute_force(f_in_Hz, gl_nS):
    jump = 0.5e-12 / 1e-9  # w / Cm = 0.5 pC / 1 nF = 0.5 mV (in volts)
    a = gl_nS * 1e-9 / (1e-9 * f_in_Hz)  # 1/(f_in tau_m)
    n = np.arange(0, 41)
    v, ref = 0.0, []
    for _ in n:
        ref.append(v)
        v = v * math.exp(-a) + jump
    got = A.regular_input_potential(n, W_SUM, f_in_Hz * Hz, 1 * nF, gl_nS * nS)
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-12, atol=1e-18)


def test_regular_input_potential_hand_value():
    # Table II, f_in = 3 Hz: a = 3 nS / (1 nF * 3 Hz) = 1; after 2 inputs V = 0.5 mV (1 + e^-1) = 0.683940 mV
    got = A.regular_input_potential(2, W_SUM, 3 * Hz, **{k: T2[k] for k in ("Cm", "gl")})
    assert float(got / mV) == pytest.approx(0.5 * (1 + math.exp(-1.0)), rel=1e-12)


def test_regular_input_count_and_rate_brute_force_table_ii():
    # Seed 003 Table II/III: w sum 0.5 pC, Cm 1 nF, gl 3 nS, v_th 1 mV; tau_m = 1/3 s.
    f_in = np.concatenate([np.arange(1.0, 61.0), np.linspace(1.0, 60.0, 237)])
    ref = np.array([_brute_count(0.5e-3, 3.0 / f, 1e-3) for f in f_in])
    got = A.regular_input_count(W_SUM, f_in * Hz, **T2)
    np.testing.assert_array_equal(got, ref)
    # firing starts between 4 and 5 Hz (min drive 2.164 pA / 0.5 pC = 4.328 Hz)
    assert np.isinf(ref[f_in < 4.32]).all() and np.isfinite(ref[f_in > 4.33]).all()
    rate = A.regular_input_rate_exact(np.array([0.3, 0.2]) * pcoulomb, f_in * Hz, **T2)
    np.testing.assert_allclose(np.asarray(rate / Hz), np.where(np.isinf(ref), 0.0, f_in / ref), rtol=1e-12)


def test_regular_input_count_hand_values():
    # f_in = 3 Hz, a = 1: V_1 = 0.5, V_2 = 0.5 (1 + 0.3679) = 0.684, V_inf = 0.5/(1 - e^-1) = 0.791 < 1 -> never
    assert math.isinf(A.regular_input_count(W_SUM, 3 * Hz, **T2))
    assert float(A.regular_input_rate_exact(W_SUM, 3 * Hz, **T2) / Hz) == 0.0
    # f_in = 30 Hz, a = 0.1, e^-a = 0.904837: V_2 = 0.952, V_3 = 0.5 + 0.952*0.9048 = 1.3617 -> n = 3, 10 Hz
    assert A.regular_input_count(W_SUM, 30 * Hz, **T2) == 3
    assert float(A.regular_input_rate_exact(W_SUM, 30 * Hz, **T2) / Hz) == pytest.approx(10.0, rel=1e-12)
    # a single input at or above threshold fires at once: n = 1
    assert A.regular_input_count(1.5 * pcoulomb, 0.1 * Hz, **T2) == 1
    # negative or zero charge never fires
    assert math.isinf(A.regular_input_count(-0.5 * pcoulomb, 30 * Hz, **T2))


def test_regular_input_count_without_leak():
    # gl = 0: V = n w / Cm. 0.3 pC -> 0.3 mV per input: 0.9 after 3, 1.2 after 4 -> n = 4.
    nl = dict(Cm=1 * nF, gl=0 * nS, v_th=1 * mV)
    assert A.regular_input_count(0.3 * pcoulomb, 5 * Hz, **nl) == 4
    # 0.25 pC lands exactly on 1 mV at the 4th input (V >= v_th fires): n = 4, not 5.
    assert A.regular_input_count(0.25 * pcoulomb, 5 * Hz, **nl) == 4
    # 0.2 pC: exactly 5 inputs
    assert A.regular_input_count(0.2 * pcoulomb, 5 * Hz, **nl) == 5
    # rate f_in / n = 20 Hz / 4 = 5 Hz, independent of f_in's magnitude (no leak)
    assert float(A.regular_input_rate_exact(0.3 * pcoulomb, 20 * Hz, **nl) / Hz) == pytest.approx(5.0)
    f_in = np.arange(1.0, 61.0)
    ref = [_brute_count(0.3e-3, 0.0, 1e-3) for _ in f_in]
    np.testing.assert_array_equal(A.regular_input_count(0.3 * pcoulomb, f_in * Hz, **nl), ref)


def test_slope_hand_values():
    # 1/(1 mV * 1 nF) = 1/(1e-12 C) = 1e12 Hz/A = 1 Hz/pA
    assert float(A.slope(1 * nF, 1 * mV) * pA / Hz) == pytest.approx(1.0, rel=1e-12)
    # 1/(20 mV * 200 pF) = 1/(4 pC) = 0.25 Hz/pA
    assert float(A.slope(200 * pF, 20 * mV) * pA / Hz) == pytest.approx(0.25, rel=1e-12)


def test_regular_input_rate_linear_table_ii():
    # b = 0.5 pC / (1/3 s * ln 0.5) = 1.5 pA / (-0.693147) = -2.164043 pA
    # k (0.5 pC * 30 Hz - 2.164043 pA) = 1 Hz/pA * (15 - 2.164043) pA = 12.835957 Hz
    w = np.array([0.3, 0.2]) * pcoulomb
    f = A.regular_input_rate_linear(w, np.array([30.0, 30.0]) * Hz, **T2)
    assert float(f / Hz) == pytest.approx(15.0 + 1.5 / math.log(0.5), abs=1e-9)
    assert float(f / Hz) == pytest.approx(12.836, abs=1e-3)
    # explicit bias, eq. 14 verbatim (b = 0): 15 Hz; below the bias: 0 Hz
    assert float(A.regular_input_rate_linear(w, np.array([30.0, 30.0]) * Hz, **T2, b=0 * pA) / Hz) == \
        pytest.approx(15.0)
    assert float(A.regular_input_rate_linear(w, np.array([4.0, 4.0]) * Hz, **T2) / Hz) == 0.0
    # different frequencies (Table III style): 0.3*10 + 0.2*40 = 11 pA -> 11 - 2.164043 = 8.835957 Hz
    f3 = A.regular_input_rate_linear(w, np.array([10.0, 40.0]) * Hz, **T2)
    assert float(f3 / Hz) == pytest.approx(11.0 + 1.5 / math.log(0.5), abs=1e-9)


def test_bias_from_leak_table_ii():
    # 0.5 pC / (0.3333 s * ln(1 - 0.5 pC / (1 nF * 1 mV))) = 1.5 pA / ln 0.5 = -2.16404 pA
    b = A.bias_from_leak(W_SUM, **T2)
    assert float(b / pA) == pytest.approx(-2.16, abs=0.01)
    assert float(b / pA) == pytest.approx(1.5 / math.log(0.5), rel=1e-12)
    assert float(A.min_firing_drive(W_SUM, **T2) / pA) == pytest.approx(-1.5 / math.log(0.5), rel=1e-12)


def test_bias_from_leak_finite_window():
    # T_w = tau_m ln 2 -> 1 - exp(-T_w/tau_m) = 1/2; x = 0.5 * 0.5 = 0.25;
    # b = 1.5 pA / ln 0.75 = 1.5 / (-0.2876821) = -5.214085 pA
    tau_m = 1.0 / 3.0
    b = A.bias_from_leak(W_SUM, **T2, T_w=tau_m * math.log(2.0) * second)
    assert float(b / pA) == pytest.approx(1.5 / math.log(0.75), rel=1e-10)
    # A finite window needs more drive (min_firing_drive(T_w) >= min_firing_drive(None)): the
    # bias is more negative, and the shorter the window the more negative.
    b_inf = float(A.bias_from_leak(W_SUM, **T2) / pA)
    windows = [0.05, 0.1, 0.3, 1.0, 3.0]
    bs = [float(A.bias_from_leak(W_SUM, **T2, T_w=t * second) / pA) for t in windows]
    drives = [float(A.min_firing_drive(W_SUM, **T2, T_w=t * second) / pA) for t in windows]
    assert all(b < b_inf for b in bs)
    assert all(d > -b_inf for d in drives)
    assert np.all(np.diff(bs) > 0)
    # T_w = 100 s = 300 tau_m: exp(-300) ~ 5e-131, same as T_w -> inf
    assert float(A.bias_from_leak(W_SUM, **T2, T_w=100 * second) / pA) == pytest.approx(b_inf, rel=1e-12)


def test_bias_from_leak_small_input_limit():
    # w_sum / (Cm v_th) = 0.01: b = 0.01 pC * 3/s / ln 0.99 = 0.03 pA / (-0.01005034) = -2.984962 pA
    # vs -gl v_th = -3 pA: ratio -x/ln(1-x) = 0.99499 (~ 1 - x/2), i.e. within 1 %
    b = float(A.bias_from_leak(0.01 * pcoulomb, **T2) / pA)
    small = float(A.bias_from_leak_small(3 * nS, 1 * mV) / pA)
    assert small == pytest.approx(-3.0, rel=1e-12)
    assert b == pytest.approx(0.03 / math.log(0.99), rel=1e-10)
    assert abs(b - small) / abs(small) < 0.01
    # and the limit tightens as the input shrinks
    b_tiny = float(A.bias_from_leak(1e-6 * pcoulomb, **T2) / pA)
    assert abs(b_tiny - small) / abs(small) < 1e-6


def test_bias_from_leak_without_leak_infinite_window():
    # gl = 0, T_w -> inf: any positive drive eventually fires, so the bias is 0.
    assert float(A.bias_from_leak(W_SUM, 1 * nF, 0 * nS, 1 * mV) / pA) == 0.0


def test_bias_from_leak_without_leak_finite_window():
    # gl = 0, T_w = 1 s: V = n * 0.5 mV fires at the 2nd input; inputs at 1/f, 2/f need 2/f <= 1 s,
    # so f >= 2 Hz and the minimum drive is 0.5 pC * 2 Hz = 1 pA = Cm v_th / T_w (1 pC / 1 s).
    # eq. 37's limit gl -> 0: w gl/Cm / ln(1 - x T_w gl/Cm) -> -w/(x T_w) = -Cm v_th / T_w = -1 pA.
    assert _brute_count(0.5e-3, 0.0, 1e-3) == 2
    b = A.bias_from_leak(W_SUM, 1 * nF, 0 * nS, 1 * mV, T_w=1 * second)
    assert float(b / pA) == pytest.approx(-1.0, rel=1e-6)


@pytest.mark.parametrize("w_pC, gl_nS", [(0.5, 3.0), (0.3, 3.0), (0.5, 10.0), (0.9, 1.0)])
def test_min_firing_drive_matches_brute_force_onset(w_pC, gl_nS):
    # Bisect on f_in for the onset of firing in the brute-force loop (infinite window ~ 100000 inputs,
    # the loop also stops once V converges below threshold).
    jump, tau_m = w_pC * 1e-12 / 1e-9, 1e-9 / (gl_nS * 1e-9)
    lo, hi = 1e-3, 1e4
    assert math.isinf(_brute_count(jump, 1 / (lo * tau_m), 1e-3))
    assert math.isfinite(_brute_count(jump, 1 / (hi * tau_m), 1e-3))
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if math.isfinite(_brute_count(jump, 1 / (mid * tau_m), 1e-3)):
            hi = mid
        else:
            lo = mid
        if hi - lo < 1e-12 * hi:
            break
    drive_pA = w_pC * hi  # pC * Hz = pA
    got = A.min_firing_drive(w_pC * pcoulomb, 1 * nF, gl_nS * nS, 1 * mV)
    assert float(got / pA) == pytest.approx(drive_pA, rel=1e-7)
    # Fig. 7B: the minimum firing drive is proportional to gl
    got2 = A.min_firing_drive(w_pC * pcoulomb, 1 * nF, 2 * gl_nS * nS, 1 * mV)
    assert float(got2 / got) == pytest.approx(2.0, rel=1e-12)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_bias_from_leak_single_input_above_threshold():
    # w_sum = 1.5 pC, Cm v_th = 1 pC: each input alone jumps 1.5 mV >= 1 mV, so the neuron fires on
    # every input, at any f_in (brute force: n = 1 at 0.1 Hz, drive 0.15 pA). The minimum drive is
    # therefore 0 (infimum), and b -> 0- as w_sum -> Cm v_th from below (ln(1 - x) -> -inf).
    assert _brute_count(1.5e-3, 3.0 / 0.1, 1e-3) == 1
    drive = A.min_firing_drive(1.5 * pcoulomb, **T2)
    assert float(drive / pA) <= 0.15
    assert float(A.bias_from_leak(1.5 * pcoulomb, **T2) / pA) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_regular_input_rate_linear_large_weights():
    # w = [1.0, 0.5] pC at 30 Hz: each input pair jumps 1.5 mV >= 1 mV, so the exact rate is 30 Hz
    # (brute force n = 1); the linear law with b = 0 gives 1 Hz/pA * 45 pA = 45 Hz, not 0.
    assert _brute_count(1.5e-3, 0.1, 1e-3) == 1
    f = A.regular_input_rate_linear(np.array([1.0, 0.5]) * pcoulomb, np.array([30.0, 30.0]) * Hz, **T2)
    assert float(f / Hz) > 0.0


def test_leak_for_bias_inverts_bias_from_leak():
    # b = gl * 0.5 pC / (1 nF ln 0.5) = gl * (-0.7213475 mV) -> gl = 2.164043 pA / 0.7213475 mV = 3 nS
    gl = A.leak_for_bias(1.5 / math.log(0.5) * pA, W_SUM, 1 * nF, 1 * mV)
    assert float(gl / nS) == pytest.approx(3.0, rel=1e-10)
    assert float(A.leak_for_bias(-2.16 * pA, W_SUM, 1 * nF, 1 * mV) / nS) == pytest.approx(
        2.16 / (0.5 / -math.log(0.5)), rel=1e-10)  # = 2.994 nS
    assert float(A.leak_for_bias(0 * pA, W_SUM, 1 * nF, 1 * mV) / nS) == 0.0
    for b in [-0.1, -1.0, -5.0, -40.0]:
        g = A.leak_for_bias(b * pA, W_SUM, 1 * nF, 1 * mV)
        # independent check by the closed form (T_w -> inf): w gl/Cm / ln(1 - w/(Cm v_th))
        assert 0.5e-12 * float(g) / 1e-9 / math.log(0.5) == pytest.approx(b * 1e-12, rel=1e-10)


def test_leak_for_bias_rejects_positive_bias():
    with pytest.raises(ParameterError, match="negative"):
        A.leak_for_bias(1 * pA, W_SUM, 1 * nF, 1 * mV)


# --- section 4: synaptic kernels ---------------------------------------------------------------

def test_kernel_charge_delta_exponential_alpha():
    tau = 5e-3
    # delta: the weight is the charge
    assert float(A.kernel_charge("delta", W_SUM) / pcoulomb) == pytest.approx(0.5, rel=1e-12)
    # exponential w exp(-t/tau): integral w tau = 2 pA * 5 ms = 0.01 pC
    q_exp, _ = quad(lambda t: 2e-12 * math.exp(-t / tau), 0, math.inf)
    assert float(A.kernel_charge("exponential", 2 * pA, 5 * ms)) == pytest.approx(q_exp, rel=1e-9)
    assert q_exp == pytest.approx(1e-14, rel=1e-9)
    # alpha w (t/tau) exp(-t/tau): integral w tau = 0.01 pC as well
    q_alpha, _ = quad(lambda t: 2e-12 * (t / tau) * math.exp(-t / tau), 0, math.inf)
    assert float(A.kernel_charge("alpha", 2 * pA, 5 * ms)) == pytest.approx(q_alpha, rel=1e-9)
    assert q_alpha == pytest.approx(1e-14, rel=1e-9)


def test_kernel_weight_for_charge():
    # alpha / exponential: w = q / tau_s = 1 pC / 5 ms = 200 pA; delta: w = q
    for kernel in ("alpha", "exponential"):
        w = A.kernel_weight_for_charge(kernel, 1 * pcoulomb, 5 * ms)
        assert float(w / pA) == pytest.approx(200.0, rel=1e-12)
    w_alpha = float(A.kernel_weight_for_charge("alpha", 1 * pcoulomb, 5 * ms))
    q, _ = quad(lambda t: w_alpha * (t / 5e-3) * math.exp(-t / 5e-3), 0, math.inf)
    assert q == pytest.approx(1e-12, rel=1e-9)
    assert float(A.kernel_weight_for_charge("delta", 1 * pcoulomb) / pcoulomb) == pytest.approx(1.0)


def test_kernel_mean_current():
    # alpha: 2 pA * 5 ms * 10 Hz = 0.1 pA; delta: 0.5 pC * 30 Hz = 15 pA
    assert float(A.kernel_mean_current("alpha", 2 * pA, 10 * Hz, 5 * ms) / pA) == pytest.approx(0.1, rel=1e-12)
    assert float(A.kernel_mean_current("exponential", 2 * pA, 10 * Hz, 5 * ms) / pA) == pytest.approx(0.1)
    assert float(A.kernel_mean_current("delta", W_SUM, 30 * Hz) / pA) == pytest.approx(15.0, rel=1e-12)
    # Brute force: a regular 10 Hz train of alpha kernels, time-averaged over its 100th period.
    tau, period = 5e-3, 0.1
    t = np.linspace(99 * period, 100 * period, 20001)
    spikes = np.arange(0, 100) * period
    dt = np.clip(t[:, None] - spikes[None, :], 0, None)
    current = (2e-12 * dt / tau * np.exp(-dt / tau)).sum(axis=1)
    mean = np.trapezoid(current, t) / period
    assert float(A.kernel_mean_current("alpha", 2 * pA, 10 * Hz, 5 * ms)) == pytest.approx(mean, rel=1e-6)


@pytest.mark.parametrize("call", [
    lambda: A.kernel_charge("gaussian", 1 * pA, 5 * ms),
    lambda: A.kernel_weight_for_charge("gaussian", 1 * pcoulomb, 5 * ms),
    lambda: A.kernel_mean_current("gaussian", 1 * pA, 10 * Hz, 5 * ms),
], ids=["kernel_charge", "kernel_weight_for_charge", "kernel_mean_current"])
def test_unknown_kernel_raises(call):
    with pytest.raises(ParameterError, match="unknown kernel 'gaussian'"):
        call()


# --- section 6: counting and Poisson variance --------------------------------------------------

def test_poisson_hand_values():
    # f T = 20 Hz * 0.5 s = 10; sqrt(f/T) = sqrt(40) Hz = 6.324555 Hz; 1/T = 1/2 s = 0.5 Hz
    assert float(A.poisson_count_variance(20 * Hz, 0.5 * second)) == pytest.approx(10.0, rel=1e-12)
    assert float(A.poisson_rate_std(20 * Hz, 0.5 * second) / Hz) == pytest.approx(math.sqrt(40.0), rel=1e-12)
    # 1/sqrt(T): 4x the window halves the std: sqrt(20/2) = 3.162278 Hz
    assert float(A.poisson_rate_std(20 * Hz, 2 * second) / Hz) == pytest.approx(math.sqrt(10.0), rel=1e-12)
    assert float(A.counting_bound(2 * second) / Hz) == pytest.approx(0.5, rel=1e-12)


def test_poisson_rate_variance_empirical():
    rng = np.random.default_rng(12345)
    for f, T in [(20.0, 0.5), (5.0, 2.0), (100.0, 0.1)]:
        counts = rng.poisson(f * T, size=200_000)
        var_rate = np.var(counts / T)
        std = float(A.poisson_rate_std(f * Hz, T * second) / Hz)
        assert var_rate == pytest.approx(f / T, rel=0.05)
        assert var_rate == pytest.approx(std ** 2, rel=0.05)
        assert np.var(counts) == pytest.approx(float(A.poisson_count_variance(f * Hz, T * second)), rel=0.05)


def test_counting_bound_brute_force():
    # Regular trains at rate f with random phase: N = #spikes in [0, T); |f - N/T| < 1/T always.
    rng = np.random.default_rng(7)
    for T in [0.1, 0.5, 2.0]:
        bound = float(A.counting_bound(T * second) / Hz)
        assert bound == pytest.approx(1.0 / T)
        for f in rng.uniform(0.5, 200.0, size=50):
            phase = rng.uniform(0, 1 / f)
            n = np.count_nonzero(phase + np.arange(0, int(f * T) + 3) / f < T)
            assert abs(f - n / T) < bound


# --- every function: unit-less and wrong-dimension arguments ------------------------------------

_W2 = np.array([0.3, 0.2]) * pcoulomb
_CASES = [
    (A.rheobase, dict(Cm=200 * pF, gl=10 * nS, EL=-70 * mV, v_th=-50 * mV)),
    (A.lif_rate, dict(I=300 * pA, **LIF)),
    (A.lif_current_for_rate, dict(f=50 * Hz, **LIF)),
    (A.perfect_integrator_rate, dict(I=300 * pA, Cm=200 * pF, v_th=-50 * mV, v_reset=-70 * mV, tau_ref=2 * ms)),
    (A.regular_input_potential, dict(n=3, w=W_SUM, f_in=10 * Hz, Cm=1 * nF, gl=3 * nS)),
    (A.regular_input_count, dict(w=W_SUM, f_in=10 * Hz, **T2)),
    (A.regular_input_rate_exact, dict(w=_W2, f_in=10 * Hz, **T2)),
    (A.slope, dict(Cm=1 * nF, v_th=1 * mV)),
    (A.regular_input_rate_linear, dict(w=_W2, f=np.array([30.0, 30.0]) * Hz, **T2)),
    (A.regular_input_rate_linear, dict(w=_W2, f=np.array([30.0, 30.0]) * Hz, **T2, b=-2 * pA)),
    (A.bias_from_leak, dict(w_sum=W_SUM, **T2, T_w=1 * second)),
    (A.bias_from_leak_small, dict(gl=3 * nS, v_th=1 * mV)),
    (A.min_firing_drive, dict(w_sum=W_SUM, **T2, T_w=1 * second)),
    (A.leak_for_bias, dict(b=-2 * pA, w_sum=W_SUM, Cm=1 * nF, v_th=1 * mV)),
    (A.kernel_charge, dict(kernel="alpha", w=2 * pA, tau_s=5 * ms)),
    (A.kernel_charge, dict(kernel="delta", w=W_SUM)),
    (A.kernel_weight_for_charge, dict(kernel="alpha", q=1 * pcoulomb, tau_s=5 * ms)),
    (A.kernel_mean_current, dict(kernel="alpha", w=2 * pA, f=10 * Hz, tau_s=5 * ms)),
    (A.poisson_count_variance, dict(f=20 * Hz, T=0.5 * second)),
    (A.poisson_rate_std, dict(f=20 * Hz, T=0.5 * second)),
    (A.counting_bound, dict(T=0.5 * second)),
]


def _params():
    out = []
    for fn, kwargs in _CASES:
        for name, value in kwargs.items():
            if name == "kernel":
                continue
            for kind in ("unit-less", "wrong-dim"):
                if name == "n" and kind == "unit-less":
                    continue  # n is a count: unit-less is its right dimension
                marks = []
                suffix = "+b" if "b" in kwargs and fn is A.regular_input_rate_linear else ""
                suffix += f"[{kwargs['kernel']}]" if "kernel" in kwargs else ""
                out.append(pytest.param(fn, kwargs, name, kind, marks=marks,
                                        id=f"{fn.__name__}{suffix}-{name}-{kind}"))
    return out


@pytest.mark.parametrize("fn, kwargs, name, kind", _params())
def test_bad_units_raise_naming_the_parameter(fn, kwargs, name, kind):
    fn(**kwargs)  # the valid call works
    value = kwargs[name]
    if kind == "unit-less":  # the same SI numbers without units
        bad = np.asarray(value, dtype=float)
        bad = bad if bad.ndim else bad.item()
    else:  # a time for everything but times, which get a potential
        bad = (1 * mV) if getattr(value, "dim", None) is second.dim else (1 * ms)
    with pytest.raises(ParameterError, match=re.escape(f"parameter '{name}'")):
        fn(**(kwargs | {name: bad}))
