"""The model-file format's discrete-step models and extra events (issue 13, for the TSA neurons): every
error names the model file and the field. Edited copies of the library's files are loaded by path
(each edit asserted to apply, so a change to equations/ cannot make a test pass vacuously)."""
import re

import pytest
from brian2 import SpikeGeneratorGroup, ms, pcoulomb

from bioconv import models
from bioconv.errors import ModelError
from bioconv.simulate import simulation_device


def culprit(model: str, field: str) -> str:
    return rf"(?s)model '{re.escape(model)}'.*field '{re.escape(field)}'"


def variant(tmp_path, source: str, name: str, *edits):
    text = (models.LIBRARY_DIR / f"{source}.toml").read_text()
    text = text.replace(f'name = "{source}"', f'name = "{name}"')
    for old, new in edits:
        assert old in text, f"edit target not found in {source}.toml: {old!r}"
        text = text.replace(old, new)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_library_tsa_models_are_discrete_with_a_negative_event():
    for name in ("tsa", "tsa_relu"):
        m = models.load(name)
        assert m.discrete and set(m.events) == {"negative"} and m.refractory == ""
    syn = models.load("signed_delta")
    assert syn.host == "tsa_relu" and set(syn.on_event) == {"negative"}


@pytest.mark.parametrize("edit, field", [
    (("v : 1\n", "dv/dt = -v / (10*ms) : 1\n"), "equations"),
    (('reset = "g -= 1"', 'reset = "g -= 1*ms"'), "events.negative.reset"),
    (('condition = "ternary > 0 and o <= -vt', 'condition = "ternary > 0 and o*ms <= -vt'), "events.negative.condition"),
    (("g = g * beta**", "g = g * ms * beta**"), "step"),
    (("[events.negative]", "[events.spike]"), "events.spike"),
    (("[options.readout.events]\nnegative", "[options.readout.events]\npositive"), "options.readout.events.positive"),
])
def test_discrete_model_errors_name_the_file_and_field(tmp_path, edit, field):
    assert models.load(variant(tmp_path, "tsa", "my_tsa_copy")).discrete  # the unedited copy loads
    path = variant(tmp_path, "tsa", "my_tsa", edit)
    with pytest.raises(ModelError, match=culprit("my_tsa", field)):
        models.load(path)


def test_synapse_on_event_and_host_errors(tmp_path):
    bad_event = variant(tmp_path, "signed_delta", "my_syn", ('negative = "v_post -= w"', 'backwards = "v_post -= w"'))
    with pytest.raises(ModelError, match=culprit("my_syn", "on_event.backwards") + ".*no event 'backwards'"):
        models.load(bad_event)
    bad_units = variant(tmp_path, "signed_delta", "my_syn2", ('negative = "v_post -= w"', 'negative = "v_post -= w*ms"'))
    with pytest.raises(ModelError, match=culprit("my_syn2", "on_event.negative")):
        models.load(bad_units)
    bad_host = variant(tmp_path, "signed_delta", "my_syn3", ('host = "tsa_relu"', 'host = "no_such_neuron"'))
    with pytest.raises(ModelError, match=culprit("my_syn3", "host")):
        models.load(bad_host)


def test_a_synapse_that_cannot_carry_negative_spikes_is_refused():
    with simulation_device("runtime", dt=1 * ms):
        src = models.neuron_group(2, "tsa", reset="signed")
        target = models.neuron_group(2, "conductance_lif", "delta")
        with pytest.raises(ModelError, match=r"synapse model 'delta'.*fires the event\(s\) \['negative'\]"):
            models.synapses(src, target, "delta", i=[0], j=[0], w=1 * pcoulomb)
        # a source without the event (a spike generator) needs no negative pathway
        gen = SpikeGeneratorGroup(1, [0], [0 * ms])
        tsa = models.neuron_group(1, "tsa_relu", "signed_delta", reset="signed")
        S = models.synapses(gen, tsa, "signed_delta", i=[0], j=[0], w=1.0)
        assert [p.objname for p in S._pathways] == ["pre"]
