"""Sweep specifications: designs, canonical configs and their hashes, grouping by shape, and errors
that name the culprit."""
import textwrap

import numpy as np
import pytest
from brian2 import mV, ms, nF, nS, pA, pF, second

from bioconv.sweep import Spec, SweepSpecError, config_hash
import networks  # noqa: E402  (tests/networks.py)

FAKE = "sweep_fake:LEVEL"


def test_grid_is_the_product_of_its_axes_with_defaults_filled_in_si():
    s = Spec(level="neuron", grid={"Cm": [100, 200] * pF, "tau_ref": [1, 2, 5] * ms}, fixed={"I_bias": 300 * pA})
    assert len(s) == 6
    c = s.configs[0]
    assert c["Cm"] == pytest.approx(1e-10) and c["tau_ref"] == pytest.approx(1e-3) and c["I_bias"] == pytest.approx(3e-10)
    assert c["gl"] == pytest.approx(10e-9)  # the model file's default
    assert (c["neuron"], c["reset"], c["dt"], c["T"]) == ("conductance_lif", "value", pytest.approx(1e-4), 1.0)
    assert {(c["Cm"], c["tau_ref"]) for c in s.configs} == {(a, b) for a in (1e-10, 2e-10) for b in (1e-3, 2e-3, 5e-3)}
    assert len(set(s.hashes)) == 6


def test_toml_strings_and_python_quantities_give_the_same_points(tmp_path):
    f = tmp_path / "config.toml"
    f.write_text(textwrap.dedent("""
        level = "neuron"
        [fixed]
        I_bias = "300 pA"
        dt = "0.01 ms"
        [grid]
        Cm = ["0.1 nF", "200 pF"]
        gl = ["5 nS", "10nS"]
    """))
    from_toml = Spec.from_toml(f)
    from_py = Spec(level="neuron", grid={"Cm": [100, 200] * pF, "gl": [5, 10] * nS},
                   fixed={"I_bias": 300 * pA, "dt": 0.01 * ms})
    assert from_toml.hashes == from_py.hashes
    assert config_hash(from_py.configs[0]) == from_py.hashes[0]


def test_random_design_is_reproducible_from_its_seed_and_stays_in_range():
    axes = {"Cm": (50 * pF, 400 * pF), "gl": (2 * nS, 20 * nS, True), "reset": ["linear", "value"]}
    a = Spec(level="neuron", random=axes, n=200, seed=3)
    b = Spec(level="neuron", random=axes, n=200, seed=3)
    c = Spec(level="neuron", random=axes, n=200, seed=4)
    assert a.hashes == b.hashes and a.hashes != c.hashes
    cm = np.array([p["Cm"] for p in a.configs])
    assert cm.min() >= 50e-12 and cm.max() <= 400e-12
    assert {p["reset"] for p in a.configs} == {"linear", "value"}


def test_points_group_by_shape_and_tasks_hold_at_most_points_per_task():
    s = Spec(level="neuron", grid={"reset": ["linear", "value"], "I_bias": [100, 200, 300, 400, 500] * pA},
             points_per_task=2)
    tasks = s.tasks()
    assert sorted(len(t.configs) for t in tasks) == [1, 1, 2, 2, 2, 2]
    assert all(len({c["reset"] for c in t.configs}) == 1 for t in tasks)
    assert all(t.size == 2 for t in tasks)  # one project size per shape, whatever is left to do
    done = set(s.hashes[:3])
    assert sum(len(t.hashes) for t in s.tasks(done)) == 7
    assert not set(h for t in s.tasks(done) for h in t.hashes) & done


def test_explicit_list_of_points():
    s = Spec(level="neuron", points=[{"Cm": 100 * pF}, {"Cm": "200 pF", "reset": "linear"}])
    assert [c["reset"] for c in s.configs] == ["value", "linear"]


@pytest.mark.parametrize("kwargs, culprit", [
    (dict(grid={"Cmm": [1] * pF}), r"unknown parameter\(s\) \['Cmm'\]"),
    (dict(grid={"Cm": [100, 200]}), r"parameter 'Cm' needs units of .*unit-less value 100"),
    (dict(grid={"Cm": [100 * mV]}), r"parameter 'Cm' needs units of farad, got 100. \* mvolt \(units of volt\)"),
    (dict(grid={"Cm": ["100"]}), r"parameter 'Cm' needs units of .*unit-less value '100'"),
    (dict(grid={"Cm": ["100 pq"]}), r"parameter 'Cm': unknown unit 'pq'"),
    (dict(grid={"Cm": []}), r"grid axis 'Cm' is empty"),
    (dict(grid={}), r"the grid has no axes"),
    (dict(points=[]), r"the list of points is empty"),
    (dict(grid={"Cm": [-1] * pF}), r"parameter 'Cm' must be positive"),
    (dict(grid={"reset": ["soft"]}), r"parameter 'reset': 'soft' is not supported; choose one of"),
    (dict(grid={"neuron": ["hodgkin"]}), r"parameter 'neuron': 'hodgkin' is not supported"),
    (dict(grid={"v_reset": [-40] * mV}), r"invalid combination at point 0 .*v_reset must lie below v_th"),
    (dict(grid={"gl": [0, 5] * nS}), r"invalid combination at point 0 \(1 point\(s\) in all\).*gl = 0"),
    (dict(grid={"dt": [2] * second}), r"invalid combination.*dt = 2.0 s is not below T = 1.0 s"),
    (dict(grid={"Cm": [1] * pF}, fixed={"Cm": 2 * pF}), r"\['Cm'\] are both fixed and varied"),
    (dict(random={"Cm": (50 * pF, 40 * pF)}, n=5, seed=0), r"random axis 'Cm': low must lie below high"),
    (dict(random={"Cm": (50 * pF, 400 * pF)}, n=5), r"needs an integer seed"),
    (dict(random={"Cm": (50 * pF, 400 * pF)}, n=0, seed=0), r"needs n, a positive number"),
    (dict(grid={"Cm": [1] * pF}, random={"Cm": (1 * pF, 2 * pF)}, n=1, seed=0), r"exactly one design"),
    (dict(grid={"Cm": [1] * pF}, points_per_task=0), r"points_per_task must be a positive integer"),
])
def test_bad_specifications_name_the_culprit(kwargs, culprit):
    with pytest.raises(SweepSpecError, match=culprit):
        Spec(level="neuron", **kwargs)


def test_a_parameter_of_another_model_is_unknown_for_that_shape():
    with pytest.raises(SweepSpecError, match=r"neuron=perfect_integrator.*unknown parameter\(s\) \['gl'\]"):
        Spec(level="neuron", grid={"neuron": ["conductance_lif", "perfect_integrator"], "gl": [5] * nS})


def test_unknown_levels_and_toml_keys_are_refused(tmp_path):
    with pytest.raises(SweepSpecError, match=r"unknown sweep level 'neurons'"):
        Spec(level="neurons", grid={"Cm": [1] * pF})
    with pytest.raises(SweepSpecError, match=r"sweep level 'no_such_module:X' cannot be imported"):
        Spec(level="no_such_module:X", grid={"Cm": [1] * pF})
    f = tmp_path / "c.toml"
    f.write_text('level = "neuron"\n[grids]\nCm = ["1 pF"]\n')
    with pytest.raises(SweepSpecError, match=r"unknown key\(s\) \['grids'\]"):
        Spec.from_toml(f)
    f.write_text('level = "neuron"\n[random]\nn = 3\nseed = 1\nCm = { low = "1 pF", hi = "2 pF" }\n')
    with pytest.raises(SweepSpecError, match=r"random axis 'Cm' takes \{low, high, log\}"):
        Spec.from_toml(f)


def test_a_level_of_ones_own_declares_its_parameters_and_combinations():
    s = Spec(level=FAKE, grid={"x": [1, 2] * mV, "mode": ["a", "b"]})
    assert len(s) == 4 and len(s.tasks()) == 2
    with pytest.raises(SweepSpecError, match=r"x must not lie below -1 V"):
        Spec(level=FAKE, grid={"x": [-2000] * mV})
    with pytest.raises(SweepSpecError, match=r"parameter 'gain' takes an integer"):
        Spec(level=FAKE, grid={"gain": [1.5]})


def test_cli_names_a_bad_config_and_a_missing_store_to_resume(tmp_path, capsys):
    from bioconv import cli
    bad = tmp_path / "bad.toml"
    bad.write_text('level = "neuron"\n[grid]\nCm = [100]\n')
    assert cli.main(["sweep", str(bad), "--out", str(tmp_path / "s")]) == 2
    assert "parameter 'Cm' needs units of farad, got the unit-less value 100" in capsys.readouterr().err
    good = tmp_path / "good.toml"
    good.write_text('level = "neuron"\n[grid]\nCm = ["100 pF"]\n')
    assert cli.main(["sweep", str(good), "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "no sweep store at" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "sweep.json").write_text('{"spec_hash": "0123456789abcdef"}')  # a store of another spec
    assert cli.main(["sweep", str(good), "--out", str(other)]) == 2
    assert f"sweep store {str(other)!r} holds the rows of another spec" in capsys.readouterr().err


def test_a_default_spec_splits_a_shape_into_several_tasks():
    from bioconv.sweep.neuron import NeuronLevel
    fake = Spec(level=FAKE, grid={"x": np.arange(2500) * mV})
    # the level's default, 1000 points at most: 3 tasks, the points dealt out in turn (evenly)
    tasks = fake.tasks()
    assert [len(t.hashes) for t in tasks] == [834, 833, 833] and {t.size for t in tasks} == {1000}
    assert tasks[1].hashes[:2] == [fake.hashes[1], fake.hashes[4]]
    assert len(fake.tasks(workers=4)) == 4  # at least one task per worker when there are enough points
    net = Spec(level="network", grid={"Cm": np.linspace(50, 400, 40) * pF})
    assert [len(t.hashes) for t in net.tasks()] == [14, 13, 13]
    assert [len(t.hashes) for t in net.tasks(workers=8)] == [5] * 8
    assert NeuronLevel().default_points_per_task({}) == 10_000
    small = Spec(level="neuron", grid={"I_bias": [500, 600, 700] * pA})
    assert len(small.tasks(workers=2)) == 2


def test_network_limits_that_involve_the_mappings_values_fail_at_spec_time_naming_the_culprit(tmp_path):
    """A point that sets tau_ref alone meets the network's rate_max; v_reset alone meets its v_th: checked
    when the spec is made (zoo: the values every population of the conversion gets; a saved network: its
    own), not when a worker reaches the point."""
    from pathlib import Path

    Spec(level="network", grid={"tau_ref": [1, 4] * ms})  # rate_max 200 Hz x 4 ms = 0.8: fine
    with pytest.raises(SweepSpecError, match=r"invalid combination at point 1 .*rate_max x tau_ref must stay below 1 "
                                             r"\(where a point does not set it, the network's rate_max = 200 Hz"):
        Spec(level="network", grid={"tau_ref": [1, 6] * ms})
    with pytest.raises(SweepSpecError, match=r"at point 1 .*rate_max x tau_ref must stay below 1"):
        Spec(level="network", grid={"rate_max": ["100 Hz", "300 Hz"]}, fixed={"tau_ref": 4 * ms})
    with pytest.raises(SweepSpecError, match=r"at point 1 .*v_reset must lie below v_th .*v_th from 0.02 V"):
        Spec(level="network", grid={"v_reset": [10, 25] * mV})
    with pytest.raises(SweepSpecError, match=r"v_reset must lie below v_th"):
        Spec(level="network", grid={"v_th": [5, -5] * mV})  # below the mapping's reset (0 mV)
    saved = networks.saved_small_convnet()  # rate_max 200 Hz, leak bias
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).uniform(0, 1, (4, 1, 8, 8)))
    fixed = {"network": str(saved), "data": str(data), "n_test": 4}
    with pytest.raises(SweepSpecError, match=r"at point 1 .*rate_max x tau_ref >= 1 in population '1'"):
        Spec(level="network", grid={"tau_ref": [1, 5] * ms}, fixed=fixed)
    assert len(Spec(level="network", grid={"tau_ref": [1, 4] * ms, "gl_scale": [0.5, 1.0]}, fixed=fixed)) == 4
