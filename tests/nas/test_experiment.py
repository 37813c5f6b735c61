"""Experiment specs and run_experiment: bad specs refused before work, files per device, resume, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from nas.experiment import ExperimentSpec, SpecError, check_spec, resolve_budgets, run_experiment
from predictors import Predictors
from supernet import ArchConfig, SearchSpace

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "experiments" / "search-tiny.yaml"


def spec_dict(**over) -> dict:
    data = {"name": "t", "space": "tiny-mbv3", "budget": 120, "seed": 0, "strategy": "evolution",
            "strategy_options": {"population": 30},
            "objectives": {"params": "maximize", "latency_ms": "minimize"},
            "devices": [{"name": "stm32f746", "constraints": {"latency_ms": 60, "sram_bytes": 320000}},
                        {"name": "cpu-host", "constraints": {"macs": 12e6}}]}
    data.update(over)
    return data


def test_the_shipped_tiny_spec_loads_and_checks():
    spec = ExperimentSpec.from_yaml(TINY)
    assert spec.name == "search-tiny" and spec.budget > 0 and len(spec.devices) == 2
    assert set(check_spec(spec)) == {d.name for d in spec.devices}


@pytest.mark.parametrize("over, match", [
    ({"budget": 0}, r"field 'budget'.*greater than 0"),
    ({"devices": [{"name": "pdp-11"}]}, r"field 'devices.0.name': unknown device 'pdp-11'; allowed: .*stm32f746"),
    ({"devices": [{"name": "stm32f746", "constraints": {"latency_ms": 0.5}}]},
     r"'devices.0.constraints.latency_ms' = 0.5 is impossible on stm32f746: the smallest subnet already needs"),
    ({"devices": [{"name": "stm32f746", "constraints": {"flash_bytes": 1000}}]}, r"flash_bytes.*impossible"),
    ({"devices": [{"name": "cpu-host", "constraints": {"energy_mj": 3}}]},
     r"unknown constraint 'energy_mj'; allowed: latency_ms"),
    ({"devices": [{"name": "cpu-host", "constraints": {"macs": -1}}]}, r"positive finite upper bound"),
    ({"devices": []}, r"field 'devices'"),
    ({"objectives": {"beauty": "maximize"}}, r"unknown objective 'beauty'"),
    ({"objectives": {"params": "up"}}, r"field 'objectives.params'"),
    ({"objectives": {"accuracy": "maximize"}}, r"'accuracy' needs field 'run'"),
    ({"strategy": "annealing"}, r"field 'strategy': unknown strategy 'annealing'; allowed: evolution"),
    ({"space": "no-such-space"}, r"field 'space': unknown space"),
    ({"run": "/nonexistent/run"}, r"field 'run'.*not a training run folder"),
    ({"bugdet": 10}, r"field 'bugdet'.*not permitted"),
    ({"devices": [{"name": "cpu-host", "constraints": {"latency_ms": "fast"}}]},
     r"field 'devices.0.constraints'.*a number or a share of the largest subnet's figure like '60%'"),
    ({"devices": [{"name": "cpu-host", "constraints": {"latency_ms": "0%"}}]}, r"a share above 0%"),
    ({"devices": [{"name": "stm32f746", "constraints": {"latency_ms": "0.1%"}}]},
     r"'devices.0.constraints.latency_ms' = 0.1% \(= [0-9.e-]+\) is impossible on stm32f746"),
])
def test_bad_specs_are_refused_before_any_work(tmp_path, over, match):
    out = tmp_path / "out"
    with pytest.raises(SpecError, match=match):
        run_experiment(ExperimentSpec.from_dict(spec_dict(**over)), out)
    assert not out.exists()


def test_run_experiment_writes_every_file_per_device_and_resumes(tmp_path):
    calls = []
    spec = ExperimentSpec.from_dict(spec_dict())
    summary = run_experiment(spec, tmp_path, progress=lambda *a: calls.append(a))
    assert not summary["stopped"] and set(summary["devices"]) == {"stm32f746", "cpu-host"}
    assert {c[0] for c in calls} == {"stm32f746", "cpu-host"} and calls[-1][1:3] == (120, 120)
    space = SearchSpace.preset("tiny-mbv3")
    for dev in spec.devices:
        info = summary["devices"][dev.name]
        folder = tmp_path / dev.name
        trials = pd.read_parquet(info["trials"])
        assert len(trials) == info["n_trials"] == 120
        for col in ("params", "latency_ms", "macs", "sram_bytes", "flash_bytes", "feasible", "source", "arch"):
            assert col in trials.columns
        # feasibility is exactly the device's constraints on the predicted figures
        expect = np.ones(len(trials), bool)
        for key, bound in dev.constraints.items():
            expect &= trials[key].to_numpy() <= bound
        np.testing.assert_array_equal(trials["feasible"], expect)
        arch = json.loads((folder / "arch.json").read_text())  # the arch alone; what the search knew beside it
        assert set(arch) == {"ks", "e", "d", "r"}
        best = space.arch_from_dict(arch)
        meta = json.loads((folder / "search.json").read_text())
        assert meta["device"] == dev.name and meta["space"] == "tiny-mbv3" and meta["constraints"] == dev.constraints
        pred = Predictors(space, dev.name).predict([best]).iloc[0]
        for key, bound in dev.constraints.items():
            assert pred[key] <= bound and meta["predicted"][key] == pytest.approx(pred[key])
        assert meta["predicted"]["params"] == trials.loc[trials["feasible"], "params"].max()
        assert trials.loc[meta["trial"], "arch"] == best.to_json()
        pareto = pd.read_csv(folder / "pareto.csv")
        assert len(pareto) == info["pareto_size"] > 0 and pareto["feasible"].all()
        assert (folder / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["name"] == "t"
    # the files are named relative to the folder, so it can be moved
    assert written["devices"]["cpu-host"]["arch"] == "cpu-host/arch.json"
    assert not [p for p in tmp_path.rglob("*.tmp")]

    more = run_experiment(ExperimentSpec.from_dict(spec_dict(budget=200)), tmp_path)
    for dev in spec.devices:
        assert more["devices"][dev.name]["resumed_from"] == 120
        assert len(pd.read_parquet(more["devices"][dev.name]["trials"])) == 200


def test_relative_budget_is_a_share_of_the_largest():
    spec = ExperimentSpec.from_dict(spec_dict(devices=[
        {"name": "stm32f746", "constraints": {"sram_bytes": 320000, "flash_bytes": "100%"}},
        {"name": "cpu-host", "constraints": {"latency_ms": "80%", "macs": "12000000"}}]))
    assert spec.devices[1].constraints == {"latency_ms": "80%", "macs": 12e6}
    resolved = resolve_budgets(spec)
    space = SearchSpace.preset("tiny-mbv3")
    mcu, cpu = (Predictors(space, d).predict([space.largest()]).iloc[0] for d in ("stm32f746", "cpu-host"))
    assert resolved.devices[0].constraints == {"sram_bytes": 320000, "flash_bytes": pytest.approx(mcu["flash_bytes"])}
    assert resolved.devices[1].constraints == {"latency_ms": pytest.approx(0.8 * cpu["latency_ms"]), "macs": 12e6}
    assert spec.devices[1].constraints["latency_ms"] == "80%"  # the spec itself as given


def test_a_relative_budget_is_searched_as_its_absolute_figure(tmp_path):
    spec = ExperimentSpec.from_dict(spec_dict(budget=60, devices=[{"name": "cpu-host",
                                                                   "constraints": {"latency_ms": "50%"}}]))
    bound = resolve_budgets(spec).devices[0].constraints["latency_ms"]
    summary = run_experiment(spec, tmp_path)
    trials = pd.read_parquet(summary["devices"]["cpu-host"]["trials"])
    np.testing.assert_array_equal(trials["feasible"], trials["latency_ms"].to_numpy() <= bound)
    meta = json.loads((tmp_path / "cpu-host" / "search.json").read_text())
    assert meta["constraints"] == {"latency_ms": bound} == summary["devices"]["cpu-host"]["constraints"]
    assert yaml.safe_load((tmp_path / "spec.yaml").read_text())["devices"][0]["constraints"] == {"latency_ms": "50%"}


def test_should_stop_ends_the_experiment_early_and_keeps_what_it_did(tmp_path):
    seen = []
    summary = run_experiment(ExperimentSpec.from_dict(spec_dict(budget=5000)), tmp_path,
                             progress=lambda *a: seen.append(a), should_stop=lambda: len(seen) >= 3)
    assert summary["stopped"] and list(summary["devices"]) == ["stm32f746"]
    info = summary["devices"]["stm32f746"]
    assert info["stopped"] and 0 < info["n_trials"] < 5000
    assert len(pd.read_parquet(info["trials"])) == info["n_trials"]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "nas", "search", *args], capture_output=True, text=True,
                          cwd=cwd, env=env)


def test_cli_search_writes_results_and_refuses_a_bad_spec_in_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(spec_dict(devices=[{"name": "pdp-11"}])))
    r = _cli(str(bad), cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and "unknown device 'pdp-11'" in r.stderr

    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(spec_dict(budget=60, devices=[{"name": "cpu-host",
                                                                  "constraints": {"latency_ms": 3}}])))
    r = _cli(str(good), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout)
    assert summary["devices"]["cpu-host"]["n_trials"] == 60 and "cpu-host" in r.stderr  # the progress bar
    arch = json.loads((tmp_path / "out" / "cpu-host" / "arch.json").read_text())
    assert isinstance(ArchConfig.from_dict({k: arch[k] for k in ("ks", "e", "d", "r")}), ArchConfig)


def test_a_ray_address_with_another_strategy_or_bad_options_are_refused_before_work(tmp_path):
    with pytest.raises(SpecError, match="needs field 'strategy' to be ray-tune"):
        run_experiment(ExperimentSpec.from_dict(spec_dict()), tmp_path / "a", ray_address="127.0.0.1:6379")
    with pytest.raises(SpecError, match=r"field 'strategy_options'.*population must be >= 2"):
        run_experiment(ExperimentSpec.from_dict(spec_dict(strategy_options={"population": 1})), tmp_path / "b")
    with pytest.raises(SpecError,
                       match=r"field 'strategy_options'.*unknown option\(s\) 'popsize'; allowed: population"):
        run_experiment(ExperimentSpec.from_dict(spec_dict(strategy_options={"popsize": 9})), tmp_path / "c")
    assert not list(tmp_path.iterdir())
