"""Every error path of the model library raises ModelError or ParameterError naming the culprit.

Model files are written to tmp_path as edited copies of the library's own files (the edit is
asserted to apply, so a change to equations/ cannot make these tests pass vacuously) and loaded
by path. Groups are built in runtime mode and never simulated.
"""
import math
import re

import numpy as np
import pytest
from brian2 import SpikeGeneratorGroup, mV, ms, nS, pA, pF

from bioconv import models
from bioconv.errors import ModelError, ParameterError
from bioconv.simulate import simulation_device

LIF_EQUATIONS = ('equations = """\n'
                 'dv/dt = int(not_refractory) * (-gl*(v - EL) + I_syn + I_bias) / Cm : volt\n'
                 '"""\n')
LIF_RESET = ('[reset]\n'
             "# Seed 003's linear LIF: subtract the threshold-to-reset distance, keep the overshoot.\n"
             'linear = "v -= vt - v_reset"\n'
             'value = "v = v_reset"\n')
CM_LINE = 'Cm = { value = 200.0, unit = "pF", constraint = "positive",'


def culprit(model: str, field: str) -> str:
    """A regex for a message naming ``model`` and then ``field``."""
    return rf"(?s)model '{re.escape(model)}'.*field '{re.escape(field)}'"


def variant(tmp_path, source: str, name: str, *edits: tuple[str, str]):
    """Write equations/<source>.toml to tmp_path/<name>.toml, renamed and with ``edits`` applied."""
    text = (models.LIBRARY_DIR / f"{source}.toml").read_text()
    old_name = f'name = "{source}"'
    assert old_name in text
    text = text.replace(old_name, f'name = "{name}"')
    for old, new in edits:
        assert old in text, f"edit target not found in {source}.toml: {old!r}"
        text = text.replace(old, new)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


@pytest.fixture
def runtime():
    with simulation_device("runtime"):
        yield


# --- loading model files ------------------------------------------------------------------------

def test_unknown_model_name():
    with pytest.raises(ModelError, match=r"unknown model 'nope'.*conductance_lif"):
        models.load("nope")


def test_missing_model_file_path(tmp_path):
    with pytest.raises(ModelError, match=r"ghost\.toml.*does not exist"):
        models.load(tmp_path / "ghost.toml")


@pytest.mark.parametrize("source", ["conductance_lif", "perfect_integrator", "delta", "exponential", "alpha",
                                    "alpha_conductance"])
def test_unedited_copy_loads(tmp_path, source):
    # Control for the tests below: a renamed copy is valid, so each failure comes from its edit.
    model = models.load(variant(tmp_path, source, f"copy_of_{source}"))
    assert model.name == f"copy_of_{source}"
    assert model.kind == models.load(source).kind


def test_invalid_toml(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('name = "broken"\nkind = "neuron"\nequations = """\ndv/dt = 0*volt/second : volt\n')
    with pytest.raises(ModelError, match=r"broken\.toml.*not valid TOML"):
        models.load(path)


@pytest.mark.parametrize("field, old", [
    ("equations", LIF_EQUATIONS),
    ("threshold", 'threshold = "v >= vt"\n'),
    ("threshold_value", 'threshold_value = "v_th"\n'),
    ("refractory", 'refractory = "tau_ref"\n'),
    ("kind", 'kind = "neuron"\n'),
])
def test_neuron_missing_required_field(tmp_path, field, old):
    path = variant(tmp_path, "conductance_lif", "lif_without", (old, ""))
    with pytest.raises(ModelError, match=culprit("lif_without", field) + " is missing"):
        models.load(path)


def test_neuron_without_reset_modes(tmp_path):
    path = variant(tmp_path, "conductance_lif", "lif_no_reset", (LIF_RESET, ""))
    with pytest.raises(ModelError, match=culprit("lif_no_reset", "reset") + ".*at least one reset mode"):
        models.load(path)


@pytest.mark.parametrize("field, old", [
    ("on_pre", 'on_pre = "I_syn_post += w"\n'),
    ("weight_unit", 'weight_unit = "pA"\n'),
    ("kernel", 'kernel = "exponential"\n'),
    ("neuron_equations", 'neuron_equations = """\ndI_syn/dt = -I_syn / tau_s : amp\n"""\n'),
])
def test_synapse_missing_required_field(tmp_path, field, old):
    path = variant(tmp_path, "exponential", "exp_without", (old, ""))
    with pytest.raises(ModelError, match=culprit("exp_without", field) + " is missing"):
        models.load(path)


def test_parameter_without_unit(tmp_path):
    path = variant(tmp_path, "conductance_lif", "lif_no_unit",
                   (CM_LINE, 'Cm = { value = 200.0, constraint = "positive",'))
    with pytest.raises(ModelError, match=culprit("lif_no_unit", "parameters.Cm") + ".*'value' and 'unit'"):
        models.load(path)


@pytest.mark.parametrize("value", ['"200"', "true", "[200.0]"])
def test_parameter_value_not_a_number(tmp_path, value):
    path = variant(tmp_path, "conductance_lif", "lif_text_value",
                   (CM_LINE, CM_LINE.replace("value = 200.0", f"value = {value}")))
    with pytest.raises(ModelError, match=culprit("lif_text_value", "parameters.Cm.value") + " must be a number"):
        models.load(path)


@pytest.mark.parametrize("unit", ["picofarads", "pF + 1", "__import__"])
def test_parameter_unit_not_a_brian2_unit(tmp_path, unit):
    path = variant(tmp_path, "conductance_lif", "lif_bad_unit", (CM_LINE, CM_LINE.replace('"pF"', f'"{unit}"')))
    with pytest.raises(ModelError, match=culprit("lif_bad_unit", "parameters.Cm.unit") + " is not a Brian2 unit"):
        models.load(path)


def test_parameter_constraint_unknown(tmp_path):
    path = variant(tmp_path, "conductance_lif", "lif_constraint",
                   (CM_LINE, CM_LINE.replace('"positive"', '"strictly_positive"')))
    with pytest.raises(ModelError, match=culprit("lif_constraint", "parameters.Cm.constraint")):
        models.load(path)


def test_parameter_with_inconsistent_unit_fails_at_load(tmp_path):
    # gl in mV: -gl*(v - EL) is in V^2, not a current, so the membrane equation is wrong.
    path = variant(tmp_path, "conductance_lif", "lif_gl_in_mV",
                   ('gl = { value = 10.0, unit = "nS"', 'gl = { value = 10.0, unit = "mV"'))
    with pytest.raises(ModelError, match=culprit("lif_gl_in_mV", "equations") + r".*'v'.*not unit-consistent"):
        models.load(path)


def test_reset_with_wrong_units(tmp_path):
    path = variant(tmp_path, "conductance_lif", "lif_bad_reset", ('value = "v = v_reset"', 'value = "v = Cm"'))
    with pytest.raises(ModelError, match=culprit("lif_bad_reset", "reset.value") + " is not unit-consistent"):
        models.load(path)


def test_threshold_with_wrong_units(tmp_path):
    path = variant(tmp_path, "conductance_lif", "lif_bad_threshold",
                   ('threshold = "v >= vt"', 'threshold = "v - vt"'))
    with pytest.raises(ModelError, match=culprit("lif_bad_threshold", "threshold")):
        models.load(path)


def test_refractory_with_wrong_units(tmp_path):
    path = variant(tmp_path, "conductance_lif", "lif_bad_refractory",
                   ('refractory = "tau_ref"', 'refractory = "v_th"'))
    with pytest.raises(ModelError, match=culprit("lif_bad_refractory", "refractory")):
        models.load(path)


def test_initial_value_of_unknown_state(tmp_path):
    path = variant(tmp_path, "conductance_lif", "lif_bad_initial",
                   ('initial = { v = "EL" }', 'initial = { v = "EL", u = "EL" }'))
    with pytest.raises(ModelError, match=culprit("lif_bad_initial", "initial.u") + " names no state variable"):
        models.load(path)


def test_option_with_inconsistent_equation(tmp_path):
    path = variant(tmp_path, "conductance_lif", "lif_bad_option",
                   ("dtheta/dt = k_theta * (r - r_target) / tau_theta * int(theta > theta_min or r > r_target) : volt",
                    "dtheta/dt = k_theta * r : volt"))
    with pytest.raises(ModelError, match=r"(?s)model 'lif_bad_option'.*option 'homeostatic'.*field 'equations'"):
        models.load(path)


def test_name_differs_from_file_stem(tmp_path):
    path = tmp_path / "my_lif.toml"
    path.write_text((models.LIBRARY_DIR / "conductance_lif.toml").read_text())
    with pytest.raises(ModelError, match=culprit("my_lif", "name") + r".*'conductance_lif'.*'my_lif'"):
        models.load(path)


def test_kind_neither_neuron_nor_synapse(tmp_path):
    path = variant(tmp_path, "conductance_lif", "lif_dendrite", ('kind = "neuron"', 'kind = "dendrite"'))
    with pytest.raises(ModelError, match=culprit("lif_dendrite", "kind") + ".*'dendrite'"):
        models.load(path)


def test_synapse_with_unknown_kernel(tmp_path):
    path = variant(tmp_path, "exponential", "exp_gaussian", ('kernel = "exponential"', 'kernel = "gaussian"'))
    with pytest.raises(ModelError, match=culprit("exp_gaussian", "kernel") + ".*'gaussian'"):
        models.load(path)


def test_synapse_weight_unit_not_a_brian2_unit(tmp_path):
    path = variant(tmp_path, "exponential", "exp_bad_weight", ('weight_unit = "pA"', 'weight_unit = "picoamps"'))
    with pytest.raises(ModelError, match=culprit("exp_bad_weight", "weight_unit") + " is not a Brian2 unit"):
        models.load(path)


def test_synapse_on_pre_unit_inconsistent(tmp_path):
    # w is in pA: adding it to the membrane potential is not unit-consistent.
    path = variant(tmp_path, "exponential", "exp_into_v", ('on_pre = "I_syn_post += w"', 'on_pre = "v_post += w"'))
    with pytest.raises(ModelError, match=culprit("exp_into_v", "on_pre") + " is not unit-consistent"):
        models.load(path)


def test_synapse_neuron_equations_inconsistent(tmp_path):
    path = variant(tmp_path, "exponential", "exp_bad_eqs",
                   ("dI_syn/dt = -I_syn / tau_s : amp", "dI_syn/dt = -I_syn : amp"))
    with pytest.raises(ModelError, match=culprit("exp_bad_eqs", "neuron_equations")):
        models.load(path)


# --- a user's folder of model files (BIOCONV_EQUATIONS) -------------------------------------------

def test_user_folder_model_is_listed_loaded_and_built(tmp_path, monkeypatch, runtime):
    variant(tmp_path, "conductance_lif", "my_lif")
    assert "my_lif" not in models.available()
    monkeypatch.setenv("BIOCONV_EQUATIONS", str(tmp_path))
    assert models.search_path()[0] == tmp_path
    assert "my_lif" in models.available()
    assert "my_lif" in models.available("neuron")
    assert "my_lif" not in models.available("synapse")
    model = models.load("my_lif")
    assert model.name == "my_lif" and model.path == (tmp_path / "my_lif.toml").resolve()
    group = models.neuron_group(3, "my_lif", "exponential", Cm=250 * pF)
    assert np.allclose(np.asarray(group.Cm), 250e-12)


def test_user_folder_comes_first(tmp_path, monkeypatch):
    # A user's file shadows the library's model of the same name.
    variant(tmp_path, "exponential", "exponential", ('value = 5.0, unit = "ms"', 'value = 7.0, unit = "ms"'))
    monkeypatch.setenv("BIOCONV_EQUATIONS", str(tmp_path))
    assert models.load("exponential").parameters["tau_s"].default == 7 * ms
    monkeypatch.delenv("BIOCONV_EQUATIONS")
    assert models.load("exponential").parameters["tau_s"].default == 5 * ms


def test_user_folder_with_broken_file_names_it(tmp_path, monkeypatch):
    variant(tmp_path, "conductance_lif", "user_broken", ('threshold = "v >= vt"\n', ""))
    monkeypatch.setenv("BIOCONV_EQUATIONS", str(tmp_path))
    with pytest.raises(ModelError, match=culprit("user_broken", "threshold")):
        models.load("user_broken")


# --- neuron_group ---------------------------------------------------------------------------------

def test_neuron_group_unknown_reset_mode(runtime):
    with pytest.raises(ModelError, match=r"'conductance_lif' has no reset mode 'soft'.*linear"):
        models.neuron_group(1, "conductance_lif", reset="soft")


def test_neuron_group_unknown_option(runtime):
    with pytest.raises(ModelError, match=r"'conductance_lif' has no option 'adaptive'.*homeostatic"):
        models.neuron_group(1, "conductance_lif", options=("adaptive",))


def test_neuron_group_unknown_parameter(runtime):
    with pytest.raises(ParameterError, match=r"'conductance_lif'.*unknown parameter.*'Cmm'"):
        models.neuron_group(1, "conductance_lif", Cmm=200 * pF)


def test_neuron_group_parameter_of_other_synapse_is_unknown(runtime):
    # tau_s belongs to the exponential kernel, not to a group built without synapse.
    with pytest.raises(ParameterError, match=r"'conductance_lif'.*unknown parameter.*'tau_s'"):
        models.neuron_group(1, "conductance_lif", tau_s=5 * ms)


def test_neuron_group_unitless_parameter(runtime):
    with pytest.raises(ParameterError, match=r"'conductance_lif': parameter 'Cm' needs units of farad.*unit-less"):
        models.neuron_group(1, "conductance_lif", Cm=200.0)


def test_neuron_group_parameter_of_wrong_dimension(runtime):
    with pytest.raises(ParameterError, match=r"'conductance_lif': parameter 'Cm' needs units of farad.*volt"):
        models.neuron_group(1, "conductance_lif", Cm=200 * mV)


def test_neuron_group_negative_capacitance(runtime):
    with pytest.raises(ParameterError, match=r"'conductance_lif': parameter 'Cm' must be positive"):
        models.neuron_group(1, "conductance_lif", Cm=-200 * pF)


def test_neuron_group_zero_capacitance(runtime):
    with pytest.raises(ParameterError, match=r"'perfect_integrator': parameter 'Cm' must be positive"):
        models.neuron_group(1, "perfect_integrator", Cm=0 * pF)


def test_neuron_group_negative_refractory_period(runtime):
    with pytest.raises(ParameterError, match=r"'conductance_lif': parameter 'tau_ref' must not be negative"):
        models.neuron_group(1, "conductance_lif", tau_ref=-1 * ms)


@pytest.mark.parametrize("value", [math.nan * mV, math.inf * mV, np.array([-70.0, np.nan]) * mV])
def test_neuron_group_non_finite_parameter(runtime, value):
    with pytest.raises(ParameterError, match=r"'conductance_lif': parameter 'EL' must be finite"):
        models.neuron_group(2, "conductance_lif", EL=value)


def test_neuron_group_negative_value_in_parameter_array(runtime):
    with pytest.raises(ParameterError, match=r"'conductance_lif': parameter 'gl' must not be negative"):
        models.neuron_group(3, "conductance_lif", gl=np.array([10.0, -1.0, 10.0]) * nS)


@pytest.mark.parametrize("shape", [(2,), (4,), (3, 1)])
def test_neuron_group_parameter_array_of_wrong_shape(runtime, shape):
    with pytest.raises(ParameterError, match=r"'conductance_lif': parameter 'EL' must be a scalar or have one "
                                             r"value per neuron \(3\)"):
        models.neuron_group(3, "conductance_lif", EL=np.full(shape, -70.0) * mV)


@pytest.mark.parametrize("n", [0, -1, 2.5, "3"])
def test_neuron_group_bad_number_of_neurons(runtime, n):
    with pytest.raises(ParameterError, match=r"'conductance_lif': number of neurons must be a positive integer"):
        models.neuron_group(n, "conductance_lif")


@pytest.mark.parametrize("synapse", ["exponential", "alpha"])
def test_neuron_group_equal_membrane_and_synaptic_time_constants(runtime, synapse):
    # tau_m = Cm/gl = 200 pF / 10 nS = 20 ms = tau_s: the exact solution divides by tau_m - tau_s.
    with pytest.raises(ParameterError, match=rf"'conductance_lif' with synapse '{synapse}'.*tau_m.*tau_s"):
        models.neuron_group(1, "conductance_lif", synapse, Cm=200 * pF, gl=10 * nS, tau_s=20 * ms)


def test_neuron_group_equal_time_constants_names_the_neuron(runtime):
    with pytest.raises(ParameterError, match=r"neuron\(s\) \[1\]"):
        models.neuron_group(3, "conductance_lif", "exponential", Cm=200 * pF, gl=np.array([5.0, 10.0, 20.0]) * nS,
                            tau_s=20 * ms)


def test_neuron_group_equal_time_constants_accepted_with_rk4(runtime):
    # The error message's advice works: RK4 does not divide by tau_m - tau_s.
    group = models.neuron_group(1, "conductance_lif", "exponential", Cm=200 * pF, gl=10 * nS, tau_s=20 * ms,
                                method="rk4")
    assert float(group.tau_s[0]) == pytest.approx(0.020)


def test_neuron_group_given_a_synapse_model(runtime):
    with pytest.raises(ModelError, match=r"'exponential' is a synapse model, expected a neuron model"):
        models.neuron_group(1, "exponential")


def test_neuron_group_given_a_neuron_model_as_synapse(runtime):
    with pytest.raises(ModelError, match=r"'perfect_integrator' is a neuron model, expected a synapse model"):
        models.neuron_group(1, "conductance_lif", "perfect_integrator")


def test_neuron_group_unknown_model_name(runtime):
    with pytest.raises(ModelError, match=r"unknown model 'lif'"):
        models.neuron_group(1, "lif")


# --- synapses -------------------------------------------------------------------------------------

@pytest.fixture
def source(runtime):
    return SpikeGeneratorGroup(1, [0], [1 * ms])


@pytest.mark.parametrize("built_with", [None, "exponential"])
def test_synapses_target_lacks_kernel_state(source, built_with):
    post = models.neuron_group(2, "conductance_lif", built_with)
    with pytest.raises(ModelError, match=rf"synapse model 'alpha': target group '{post.name}' was built with "
                                         rf"synapse model {built_with!r}"):
        models.synapses(source, post, "alpha", i=[0], j=[0], w=10 * pA)


def test_synapses_target_group_not_built_here_lacks_kernel_state(source):
    # A plain Brian2 group: bioconv cannot know its kernel, so it checks the on_pre targets exist.
    from brian2 import NeuronGroup
    post = NeuronGroup(2, "dv/dt = -v/(10*ms) : volt\nCm : farad")
    with pytest.raises(ModelError, match=rf"synapse model 'alpha': target group '{post.name}' lacks \['y_syn'\]"):
        models.synapses(source, post, "alpha", i=[0], j=[0], w=10 * pA)


def test_synapses_unitless_weight(source):
    post = models.neuron_group(2, "conductance_lif", "exponential")
    with pytest.raises(ParameterError, match=r"synapse model 'exponential': parameter 'w' needs units of amp.*unit-less"):
        models.synapses(source, post, "exponential", i=[0], j=[0], w=10.0)


def test_synapses_weight_of_wrong_unit(source):
    post = models.neuron_group(2, "conductance_lif", "exponential")
    with pytest.raises(ParameterError, match=r"synapse model 'exponential': parameter 'w' needs units of amp.*volt"):
        models.synapses(source, post, "exponential", i=[0], j=[0], w=10 * mV)


def test_synapses_conductance_weight_must_be_siemens(source):
    post = models.neuron_group(2, "conductance_lif", "alpha_conductance")
    with pytest.raises(ParameterError, match=r"synapse model 'alpha_conductance': parameter 'w' needs units of siemens"):
        models.synapses(source, post, "alpha_conductance", i=[0], j=[0], w=10 * pA)


def test_synapses_non_finite_weight(source):
    post = models.neuron_group(2, "conductance_lif", "exponential")
    with pytest.raises(ParameterError, match=r"synapse model 'exponential': parameter 'w' must be finite"):
        models.synapses(source, post, "exponential", i=[0, 0], j=[0, 1], w=np.array([1.0, np.nan]) * pA)


def test_synapses_given_a_neuron_model(source):
    post = models.neuron_group(2, "conductance_lif", "exponential")
    with pytest.raises(ModelError, match=r"'conductance_lif' is a neuron model, expected a synapse model"):
        models.synapses(source, post, "conductance_lif", i=[0], j=[0], w=10 * pA)


# --- gaps found in review, now closed -----------------------------------------------------------------

def test_unit_string_with_numeric_factor_is_refused(tmp_path):
    path = variant(tmp_path, "conductance_lif", "lif_scaled_unit",
                   ('EL = { value = -70.0, unit = "mV"', 'EL = { value = -70.0, unit = "1000*mV"'))
    with pytest.raises(ModelError, match=culprit("lif_scaled_unit", "parameters.EL.unit")):
        models.load(path)


def test_neuron_group_nan_number_of_neurons(runtime):
    with pytest.raises(ParameterError, match=r"number of neurons"):
        models.neuron_group(float("nan"), "conductance_lif")


def test_synapses_kernel_mismatch_is_caught_at_build(source):
    post = models.neuron_group(1, "conductance_lif", "alpha_conductance")
    with pytest.raises(ModelError, match=r"synapse model 'exponential'"):
        models.synapses(source, post, "exponential", i=[0], j=[0], w=10 * pA)


def test_option_threshold_with_wrong_units_names_the_option_field(tmp_path):
    # the windowed threshold of relpsp compares times: a voltage there is named by its option's field
    path = variant(tmp_path, "relpsp", "relpsp_bad_window",
                   ("timestep(t + dt, dt) >= timestep(t_on, dt) and", "t + v >= t_on and"))
    with pytest.raises(ModelError, match=culprit("relpsp_bad_window", "options.window.threshold")):
        models.load(path)
