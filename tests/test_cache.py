"""The compiled-project cache (`bioconv.simulate.cache`): keys, whole-entry writes, size limit with
least-recently-used eviction, locks, and the switches."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from bioconv.errors import ParameterError
from bioconv.simulate import cache


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOCONV_PROJECT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_key_depends_on_every_part_and_nothing_else():
    a = {"B": 2, "w": np.arange(5.0), "net": {"x": [1, 2], "y": "linear"}}
    same = {"net": {"y": "linear", "x": [1, 2]}, "w": np.arange(5.0), "B": 2}  # another order
    assert cache.project_key(a) == cache.project_key(same)
    for changed in ({**a, "B": 3}, {**a, "w": np.arange(5.0) + 1e-12}, {**a, "w": np.arange(5.0, dtype=np.float32)},
                    {**a, "net": {"x": [1, 2], "y": "value"}}, {**a, "extra": None}):
        assert cache.project_key(changed) != cache.project_key(a)


def _project(tmp_path, name, size):
    folder = tmp_path / name
    (folder / "static_arrays").mkdir(parents=True)
    (folder / "main").write_bytes(b"\0" * size)
    (folder / "static_arrays" / "a").write_bytes(b"1" * 10)
    return folder


def test_store_then_hit_and_lru_eviction(tmp_path, root, monkeypatch):
    monkeypatch.setenv("BIOCONV_PROJECT_CACHE_SIZE", "2500")
    for k, key in enumerate(["aa", "bb", "cc"]):
        with cache.locked(key) as hit:
            assert hit is None
            cache.store(key, _project(tmp_path, key, 1000), ["main", "static_arrays/a"], {"summary": key})
        time.sleep(0.01)
        if k == 0:
            with cache.locked("aa") as hit:  # a hit: the whole entry is there, the stamp renewed
                assert hit is not None and (hit / "main").stat().st_size == 1000 and (hit / "static_arrays" / "a").exists()
                cache.touch(hit)
    keys = [e.key for e in cache.entries()]
    assert keys == ["bb", "cc"]  # 'aa' (least recently used) went to keep the cache within 2500 bytes
    assert all(e.manifest["summary"] == e.key for e in cache.entries())
    assert not list(root.glob(".*.tmp"))  # no half-written entry is left
    assert cache.clear() == 2 and cache.entries() == []


def test_an_entry_in_use_or_being_written_is_not_evicted(tmp_path, root):
    with cache.locked("aa"):
        cache.store("aa", _project(tmp_path, "aa", 100), ["main"], {})
    from filelock import FileLock
    with FileLock(str(root / "aa.lock")):  # another process compiles or stores it
        assert cache.evict(limit=0) == []
    with cache.in_use("aa"):  # another process runs it
        assert cache.clear() == 0 and (root / "aa" / "main").exists()
    assert cache.evict(limit=0) == ["aa"]
    assert not any(root.glob(".*"))  # removed whole, nothing left half-deleted


def test_an_incomplete_entry_is_not_a_hit(tmp_path, root):
    """A file of the entry missing or cut short (a crash, a disk full): compiled again, never run."""
    with cache.locked("aa"):
        cache.store("aa", _project(tmp_path, "aa", 100), ["main", "static_arrays/a"], {})
    with cache.locked("aa") as hit:
        assert hit is not None
    (root / "aa" / "static_arrays" / "a").write_bytes(b"1")
    with cache.locked("aa") as hit:
        assert hit is None
    (root / "aa" / "static_arrays" / "a").unlink()
    with cache.locked("aa") as hit:
        assert hit is None
        cache.store("aa", _project(tmp_path, "bb", 100), ["main", "static_arrays/a"], {})
    with cache.locked("aa") as hit:
        assert hit is not None


def test_switches(monkeypatch, tmp_path):
    monkeypatch.delenv("BIOCONV_PROJECT_CACHE_DIR", raising=False)
    monkeypatch.setenv("BIOCONV_CACHE", str(tmp_path))  # the zoo's folder too: projects sit beside it
    assert cache.cache_root() == tmp_path / "projects"
    for off in ("off", "0", "false", "NO"):
        monkeypatch.setenv("BIOCONV_PROJECT_CACHE", off)
        assert not cache.enabled()
    monkeypatch.setenv("BIOCONV_PROJECT_CACHE", "on")
    assert cache.enabled()
    monkeypatch.setenv("BIOCONV_PROJECT_CACHE_SIZE", "1.5G")
    assert cache.max_bytes() == int(1.5 * 2 ** 30)
    monkeypatch.setenv("BIOCONV_PROJECT_CACHE_SIZE", "lots")
    with pytest.raises(ParameterError, match="BIOCONV_PROJECT_CACHE_SIZE"):
        cache.max_bytes()


_SECOND_PROCESS = r"""
import json, sys
import numpy as np
from brian2 import ms
import brian2.devices.cpp_standalone.device as standalone
import bioconv.simulate.network as network
import bioconv.simulate.runner as runner
sys.path.insert(0, sys.argv[1])
import networks
from bioconv.converter import convert

def refuse(*args, **kwds):
    raise AssertionError("a cache hit must build and compile nothing")

standalone.CPPStandaloneDevice.build = refuse          # no project generated
standalone.CPPStandaloneDevice.compile_source = refuse  # no compiler started
runner.build = network.build = refuse                   # no Brian2 object made
x = np.random.default_rng(3).random((40, 1, 8, 8))
snn = convert(networks.graph("small_convnet"), x)
res = snn.evaluate(x[:int(sys.argv[2])], np.zeros(int(sys.argv[2]), int), duration=20 * ms, progress=False)
print(json.dumps({"hit": res.settings["cache_hit"], "batch": res.settings["batch"],
                  "presentations": res.settings["presentations"], "predictions": res.predictions[:, -1].tolist()}))
"""


@pytest.mark.slow
def test_another_process_with_other_samples_reuses_the_compiled_project(root, tmp_path, caplog):
    """A second evaluate of the same shape, in a new process and with another number of samples, takes
    the compiled project from the cache: it builds no Brian2 object, generates no project and starts no
    compiler, and its decisions on the shared samples are the first call's."""
    import json
    import logging
    import subprocess
    import sys
    from brian2 import ms
    import networks
    from bioconv.converter import convert
    x = np.random.default_rng(3).random((40, 1, 8, 8))
    snn = convert(networks.graph("small_convnet"), x)
    with caplog.at_level(logging.INFO, logger="bioconv.simulate.runner"):
        first = snn.evaluate(x[:30], np.zeros(30, int), duration=20 * ms, progress=False)
    assert first.settings["cache_hit"] == [False] and "compiled project cached" in caplog.text
    assert len(cache.entries()) == 1
    out = subprocess.run([sys.executable, "-c", _SECOND_PROCESS, os.path.dirname(__file__), "17"],
                         capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert out.returncode == 0, out.stderr[-3000:]
    second = json.loads(out.stdout.strip().splitlines()[-1])
    assert second["hit"] == [True]
    assert (second["batch"], second["presentations"]) == (first.settings["batch"], first.settings["presentations"])
    assert second["predictions"] == first.predictions[:17, -1].tolist()
    assert len(cache.entries()) == 1


def _graph(seed):
    from bioconv import graph as G
    rng = np.random.default_rng(seed)
    return G.sequential((1, 6, 6), [
        ("conv2d", {"weight": rng.normal(0, 0.5, (2, 1, 3, 3)), "bias": rng.normal(0, 0.1, 2), "padding": 1}), "relu",
        ("maxpool2d", {"kernel": 2}), "flatten", ("linear", {"weight": rng.normal(0, 0.5, (5, 18)),
                                                             "bias": rng.normal(0, 0.1, 5)}), "relu",
        ("linear", {"weight": rng.normal(0, 0.5, (3, 5))})])


@pytest.mark.slow
def test_one_project_serves_other_weights_of_its_shape(root, monkeypatch):
    """Weights and per-neuron parameters travel as run_args: a network of the same topology with other
    weights (and so other biases and scales) runs on the cached project, with the counts of a build of
    its own."""
    from brian2 import ms
    from bioconv.converter import convert
    from bioconv.simulate.runner import CompiledNetwork
    x = np.random.default_rng(1).random((20, 1, 6, 6))
    a, b = convert(_graph(1), x, bias="current"), convert(_graph(2), x, bias="current")
    assert not np.allclose(np.asarray(a.mapped.populations[1].projections[0].w),
                           np.asarray(b.mapped.populations[1].projections[0].w), rtol=1e-3, atol=0)

    def counts(snn):
        rates = snn.target_rates(x[:4])[snn.mapped.populations[0].name]
        with CompiledNetwork(snn.mapped, 2, duration=30 * ms, dt=0.1 * ms, threads=1, presentations=2) as net:
            out = net.run(rates)
            return net.cache_hit, net.key, out.counts

    hit_a, key_a, _ = counts(a)
    hit_b, key_b, got = counts(b)
    assert (hit_a, hit_b) == (False, True) and key_a == key_b
    # clearing the cache while a network runs on it leaves that project alone
    rates = b.target_rates(x[:4])[b.mapped.populations[0].name]
    with CompiledNetwork(b.mapped, 2, duration=30 * ms, dt=0.1 * ms, threads=1, presentations=2) as net:
        assert net.cache_hit and cache.clear() == 0
        again = net.run(rates).counts
    for name in got:
        np.testing.assert_array_equal(again[name], got[name], err_msg=name)
    assert cache.clear() == 1
    monkeypatch.setenv("BIOCONV_PROJECT_CACHE", "off")
    _, _, own = counts(b)
    for name in own:
        np.testing.assert_array_equal(got[name], own[name], err_msg=name)
    assert sum(int(c.sum()) for c in own.values()) > 50
