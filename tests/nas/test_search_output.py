"""nas.search.output: the one owner of a search's folder. Names, the arch-only arch.json with its metadata beside it,
summary.json with relative paths (and the older forms still read), and Pareto rows of one shape whether the search
runs or has finished."""

from __future__ import annotations

import json
import shutil
import threading
import warnings
from pathlib import Path

import pandas as pd
import pytest

from nas.experiment import ExperimentSpec, run_experiment
from nas.search.output import (SearchOutput, SearchOutputError, device_dir_name, live_pareto_rows, pareto_rows,
                               service_study_base, study_name)
from supernet import ArchConfig

SPEC = {"name": "out", "space": "tiny-mbv3", "budget": 40, "seed": 0, "strategy": "random",
        "objectives": {"params": "maximize", "latency_ms": "minimize"},
        "devices": [{"name": "stm32f746", "constraints": {"sram_bytes": 320000, "flash_bytes": 1000000}}]}


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> tuple[Path, dict]:
    """A finished search (one device) and its summary."""
    root = tmp_path_factory.mktemp("search") / "out"
    return root, run_experiment(ExperimentSpec.from_dict(SPEC), root)


def test_names_of_device_folders_and_studies():
    assert device_dir_name("stm32f746") == "stm32f746"
    assert device_dir_name("/profiles/my board.yaml") == "my_board"
    assert device_dir_name("a/b") == "a_b" and device_dir_name("") == "device"
    assert study_name("search-tiny", "cpu-host") == "search-tiny:cpu-host"
    assert study_name(service_study_base("t", "3f2a9c1b7d4e"), "cpu-host") == "t-3f2a9c1b7d4e:cpu-host"


def test_arch_json_is_the_arch_alone_and_the_summary_names_files_relative_to_it(searched, tmp_path):
    root, summary = searched
    arch = json.loads((root / "stm32f746" / "arch.json").read_text())
    assert ArchConfig.from_dict(arch).to_dict() == arch  # loadable as it is, nothing else in it
    written = json.loads((root / "summary.json").read_text())["devices"]["stm32f746"]
    assert {written[k] for k in ("trials", "pareto", "arch", "meta", "plot")} == {
        "stm32f746/trials.parquet", "stm32f746/pareto.csv", "stm32f746/arch.json", "stm32f746/search.json",
        "stm32f746/pareto.png"}
    # a moved folder still reads whole
    moved = tmp_path / "elsewhere"
    shutil.copytree(root, moved)
    best = SearchOutput(moved).best("stm32f746")
    assert best.arch == arch and best.space == "tiny-mbv3" and best.meta["device"] == "stm32f746"
    assert best.predicted["sram_bytes"] <= 320000 and best.meta["constraints"]["sram_bytes"] == 320000
    assert SearchOutput(moved).summary()["devices"]["stm32f746"]["arch"] == str(moved / "stm32f746" / "arch.json")
    trials = SearchOutput(moved).trials("stm32f746")
    assert len(trials) == summary["devices"]["stm32f746"]["n_trials"] == 40
    assert trials.loc[best.meta["trial"], "arch"] == ArchConfig.from_dict(arch).to_json()


@pytest.mark.parametrize("form", ["absolute", "cwd-relative", "no-summary"])
def test_folders_written_before_read_the_same(searched, tmp_path, monkeypatch, form):
    """Earlier searches wrote the metadata into arch.json and absolute (or cwd-relative) paths into summary.json."""
    root, _ = searched
    old = tmp_path / "runs" / "old"
    shutil.copytree(root, old)
    best = SearchOutput(root).best("stm32f746")
    (old / "stm32f746" / "search.json").unlink()
    (old / "stm32f746" / "arch.json").write_text(json.dumps({**best.arch, **best.meta}, indent=2))
    summary = json.loads((old / "summary.json").read_text())
    entry = summary["devices"]["stm32f746"]
    del entry["meta"]
    for key in ("trials", "pareto", "arch", "plot"):
        entry[key] = str(old / entry[key]) if form == "absolute" else f"runs/old/{entry[key]}"
    (old / "summary.json").write_text(json.dumps(summary))
    if form == "no-summary":
        (old / "summary.json").unlink()
    monkeypatch.chdir(tmp_path)
    again = SearchOutput(old).best("stm32f746")
    assert again.arch == best.arch and again.predicted == best.predicted and again.space == "tiny-mbv3"
    monkeypatch.chdir(old.parent)  # the folder seen from elsewhere: cwd-relative paths fall back to the folder
    assert SearchOutput(old).best("stm32f746").arch == best.arch
    assert SearchOutput(old).pareto_rows("stm32f746", SPEC["objectives"])


def test_missing_folder_device_or_arch_is_said(searched, tmp_path):
    root, _ = searched
    with pytest.raises(SearchOutputError, match="does not exist"):
        SearchOutput(tmp_path / "nowhere").best("stm32f746")
    with pytest.raises(SearchOutputError, match=r"no best arch for 'cpu-host'; devices searched: stm32f746"):
        SearchOutput(root).best("cpu-host")
    # a search that found no feasible arch writes none (and removes one an earlier run left)
    none = SearchOutput(tmp_path / "none")
    shutil.copytree(root, none.root)
    trials = none.trials("stm32f746")
    files = none.write_device("stm32f746", trials, trials.iloc[:0], best=None)
    none.write_summary({"name": "none", "devices": {"stm32f746": files}})
    assert files["arch"] is None and not (none.root / "stm32f746" / "arch.json").exists()
    with pytest.raises(SearchOutputError, match="found no feasible arch for device 'stm32f746'"):
        none.best("stm32f746")


def test_files_outside_the_allowed_folder_are_not_read(searched, tmp_path):
    root, _ = searched
    inside = tmp_path / "served" / "exp"
    shutil.copytree(root, inside)
    summary = json.loads((inside / "summary.json").read_text())
    summary["devices"]["stm32f746"]["pareto"] = str(root / "stm32f746" / "pareto.csv")  # a path out of it
    (inside / "summary.json").write_text(json.dumps(summary))
    assert SearchOutput(inside, within=tmp_path / "served").file("stm32f746", "pareto") is None
    assert SearchOutput(inside, within=tmp_path / "served").file("stm32f746", "arch") is not None
    assert SearchOutput(inside).file("stm32f746", "pareto") == root / "stm32f746" / "pareto.csv"


def assert_same_rows(live: list[dict], finished: list[dict]) -> None:
    """One row shape (trial, arch in OFA keys, feasible, the objectives, the constraints) and the same front."""
    assert finished and [r["trial"] for r in live] == [r["trial"] for r in finished]
    values = ["params", "latency_ms", "sram_bytes", "flash_bytes"]
    for a, b in zip(live, finished):
        assert list(a) == list(b) == ["trial", "arch", "feasible", *values]
        assert a["arch"] == b["arch"] and set(a["arch"]) == {"ks", "e", "d", "r"}
        assert a["feasible"] is b["feasible"] is True
        assert all(a[k] == pytest.approx(b[k]) for k in values)


def test_live_and_finished_rows_agree_on_the_same_trials(searched):
    root, _ = searched
    out = SearchOutput(root)
    objectives = SPEC["objectives"]
    finished = out.pareto_rows("stm32f746", objectives, ["sram_bytes", "flash_bytes"])
    live = live_pareto_rows(out.trials("stm32f746"), objectives, ["sram_bytes", "flash_bytes"])
    assert_same_rows(live, finished)
    assert pareto_rows(pd.DataFrame({"trial": [3], "arch": ['{"ks":[3],"e":[3],"d":[1],"r":8}'],
                                     "feasible": [True], "params": [float("nan")]}), {"params": "maximize"}) == [
        {"trial": 3, "arch": {"ks": [3], "e": [3], "d": [1], "r": 8}, "feasible": True, "params": None}]


@pytest.fixture
def api(tmp_path, monkeypatch):
    """An in-process API (no job runner, no token) over this test's runs folder, and its settings."""
    from nas.api import create_app
    from nas.service.settings import Settings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    monkeypatch.delenv("NAS_API_TOKEN", raising=False)
    monkeypatch.setenv("NAS_PROFILES_DIR", str(tmp_path / "runs" / "profiles"))
    settings = Settings.from_env(runs_dir=tmp_path / "runs", db_url=f"sqlite:///{tmp_path / 'nas.db'}", token=None)
    with TestClient(create_app(settings, start_jobs=False)) as client:
        yield client, settings


def test_the_pareto_route_answers_one_row_shape_running_and_finished(api):
    """GET /experiments/{id}/pareto: while the search runs (its study) and once it finished (its files)."""
    from nas.service.store import Experiment, Store
    from nas.service.worker import run_job

    c, settings = api
    body = {**SPEC, "budget": 60, "devices": [SPEC["devices"][0]]}
    r = c.post("/experiments", json=body)
    assert r.status_code == 202, r.text
    exp_id = r.json()["id"]
    assert c.get(f"/experiments/{exp_id}/pareto", params={"device": "stm32f746"}).status_code == 409
    store = Store(settings.database_url)
    with store.session() as session:
        job_id = session.get(Experiment, exp_id).job_id
    worker = threading.Thread(target=run_job, args=(job_id, settings))  # not the main thread: no signals
    worker.start()
    worker.join()
    assert c.get(f"/experiments/{exp_id}").json()["status"] == "succeeded"
    finished = c.get(f"/experiments/{exp_id}/pareto", params={"device": "stm32f746"}).json()["rows"]
    store.update_job(job_id, status="running")  # as the search looks while it runs: rows from its study
    live = c.get(f"/experiments/{exp_id}/pareto", params={"device": "stm32f746"}).json()["rows"]
    store.close()
    assert_same_rows(live, finished)


def test_the_api_takes_a_relative_budget_and_keeps_it_resolved(api):
    from predictors import Predictors
    from supernet import SearchSpace

    c, _ = api
    body = {**SPEC, "devices": [{"name": "cpu-host", "constraints": {"latency_ms": "60%"}}]}
    r = c.post("/experiments", json=body)
    assert r.status_code == 202, r.text
    spec = c.get(f"/experiments/{r.json()['id']}").json()["spec"]
    bad = c.post("/experiments", json={**body, "devices": [{"name": "cpu-host",
                                                             "constraints": {"latency_ms": "fast"}}]})
    space = SearchSpace.preset("tiny-mbv3")
    largest = Predictors(space, "cpu-host").predict([space.largest()]).iloc[0]
    assert spec["devices"][0]["constraints"] == {"latency_ms": pytest.approx(0.6 * largest["latency_ms"])}
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:4] == ["body", "devices", 0, "constraints"]
    assert "'60%'" in bad.json()["detail"][0]["msg"]
