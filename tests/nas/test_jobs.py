"""Jobs through a real server: an experiment from start to result, the concurrency limit, cancel and resume,
SIGKILL of the server in the middle of a search (trials kept, on SQLite and on PostgreSQL), and an export
downloaded and opened."""

from __future__ import annotations

import io
import json
import shutil
import time
import zipfile
from pathlib import Path

import optuna
import pytest
import yaml

from supernet import SearchSpace

ROOT = Path(__file__).resolve().parents[2]
SPACE = "tiny-mbv3"


def spec(budget: int = 60, devices: tuple[str, ...] = ("stm32f746", "cpu-host"), strategy: str = "evolution",
         name: str = "t") -> dict:
    base = yaml.safe_load((ROOT / "experiments" / "search-tiny.yaml").read_text())
    base.update(name=name, budget=budget, strategy=strategy)
    # small batches: a search written to storage batch by batch is still running when a test kills or cancels it
    base["strategy_options"] = {"population": 20} if strategy == "evolution" else {"batch_size": 50}
    base["devices"] = [d for d in base["devices"] if d["name"] in devices]
    return base


def wait_for(get, done, what: str, limit_s: float = 600.0, poll_s: float = 0.1):
    """Poll `get()` until `done(state)`; the limit only keeps a broken build from hanging the suite."""
    import httpx

    end = time.monotonic() + limit_s
    while True:
        try:
            state = get()
        except httpx.RemoteProtocolError:
            # a keep-alive connection the server closed after its idle timeout while this process was starved of
            # CPU (seen once at load 6 on 2 cores): the next request opens a new one; a dead server fails to connect
            if time.monotonic() > end:
                raise
            time.sleep(poll_s)
            continue
        if done(state):
            return state
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}; last state: {state}")
        time.sleep(poll_s)


def finished(state: dict) -> bool:
    return state["status"] in ("succeeded", "failed", "cancelled", "interrupted")


@pytest.mark.slow
def test_experiment_from_start_to_result(serve):
    server = serve()
    with server.client() as c:
        r = c.post("/experiments", json=spec(budget=60))
        assert r.status_code == 202, r.text
        exp_id = r.json()["id"]
        assert r.headers["location"] == f"/experiments/{exp_id}"
        state = wait_for(lambda: c.get(f"/experiments/{exp_id}").json(), finished, "the experiment")
        assert state["status"] == "succeeded", state
        assert state["trials_done"] == 120 and state["budget"] == 120 and state["progress"] == 1.0
        space = SearchSpace.preset(SPACE)
        limits = {d["name"]: d["constraints"] for d in spec()["devices"]}
        for device, best in state["best"].items():
            space.arch_from_dict(best["arch"])  # a valid arch of the space
            for key, bound in limits[device].items():
                assert best["predicted"][key] <= bound
        pareto = c.get(f"/experiments/{exp_id}/pareto", params={"device": "stm32f746"}).json()
        assert pareto["rows"] and all(row["feasible"] in (True, False) for row in pareto["rows"])
        d = c.get(f"/experiments/{exp_id}/pareto", params={"device": "nvidia-t4"})
        assert d.status_code == 422 and d.json()["detail"][0]["ctx"]["allowed"] == ["stm32f746", "cpu-host"]
        assert [e["id"] for e in c.get("/experiments").json()] == [exp_id]
        again = c.post(f"/experiments/{exp_id}/resume")
        assert again.status_code == 409
        shown = json.dumps(state)
        assert "storage" not in state["result"] and str(server.runs_dir) not in shown  # no server paths or URLs
    out = server.runs_dir / "experiments" / exp_id
    assert (out / "summary.json").is_file() and (out / state["result"]["devices"]["stm32f746"]["pareto"]).is_file()


def detail(r) -> list[dict]:
    assert r.status_code == 422, r.text
    return r.json()["detail"]


def test_bad_specs_are_422_with_the_field(serve):
    server = serve()
    with server.client() as c:
        bad = spec()
        bad["devices"][0]["name"] = "toaster"
        d = detail(c.post("/experiments", json=bad))
        assert d[0]["loc"] == ["body", "devices", 0, "name"] and "stm32f746" in d[0]["ctx"]["allowed"]
        bad = spec()
        bad["devices"][0]["name"] = "../../etc/passwd.yaml"
        assert detail(c.post("/experiments", json=bad))[0]["loc"] == ["body", "devices", 0, "name"]
        bad = spec()
        bad["objectives"] = {"happiness": "maximize"}
        d = detail(c.post("/experiments", json=bad))
        assert d[0]["loc"][:2] == ["body", "objectives"] and "latency_ms" in d[0]["msg"]
        bad = spec()
        bad["devices"][0]["constraints"]["latency_ms"] = 0.001
        d = detail(c.post("/experiments", json=bad))
        assert d[0]["loc"] == ["body", "devices", 0, "constraints", "latency_ms"] and "impossible" in d[0]["msg"]
        d = detail(c.post("/experiments", json={**spec(), "budget": 0}))
        assert d[0]["loc"] == ["body", "budget"]
        d = detail(c.post("/experiments", json={**spec(), "storage": "sqlite:////tmp/elsewhere.db"}))
        assert d[0]["loc"] == ["body", "storage"]
        d = detail(c.post("/experiments", json={**spec(), "run": "../../.."}))
        assert d[0]["loc"] == ["body", "run"]
        d = detail(c.post("/experiments", json={**spec(), "objectives": {"accuracy": "maximize"}}))
        assert d[0]["loc"] == ["body", "objectives"]
        assert detail(c.post("/experiments", json=[1, 2]))[0]["loc"] == ["body"]
        assert c.get("/experiments").json() == []  # nothing recorded for refused specs
        ok = c.post("/experiments", content=yaml.safe_dump(spec(budget=20, devices=("cpu-host",))),
                    headers={"content-type": "application/yaml"})
        assert ok.status_code == 202, ok.text


@pytest.mark.slow
def test_concurrency_limit_queues_the_rest(serve):
    server = serve(workers=1)
    with server.client() as c:
        ids = [c.post("/experiments", json=spec(budget=40, devices=("cpu-host",), name=f"q{i}")).json()["id"]
               for i in range(2)]
        seen_running: list[int] = []

        def states():
            got = [c.get(f"/experiments/{i}").json() for i in ids]
            seen_running.append(sum(s["status"] == "running" for s in got))
            return got

        final = wait_for(states, lambda got: all(finished(s) for s in got), "both experiments")
    assert [s["status"] for s in final] == ["succeeded"] * 2
    assert max(seen_running) == 1
    for before, after in zip(final, final[1:]):  # one at a time, oldest first
        assert after["started_at"] >= before["finished_at"]


@pytest.mark.slow
def test_cancel_then_resume_keeps_trials(serve):
    server = serve()
    with server.client() as c:
        # a budget far beyond what runs between the first progress report and the cancel landing (a fast moment
        # here once ran all of 2,000 trials in that window)
        budget = 10_000
        exp_id = c.post("/experiments", json=spec(budget=budget, devices=("cpu-host",), strategy="random")).json()["id"]
        wait_for(lambda: c.get(f"/experiments/{exp_id}").json(), lambda s: s["trials_done"] > 0 or finished(s),
                 "first trials", poll_s=0.02)
        assert c.post(f"/experiments/{exp_id}/cancel").status_code == 200
        state = wait_for(lambda: c.get(f"/experiments/{exp_id}").json(), finished, "the cancel")
        assert state["status"] == "cancelled"
        kept = state["trials_done"]
        assert 0 < kept < budget
        assert c.post(f"/experiments/{exp_id}/resume").status_code == 202
        state = wait_for(lambda: c.get(f"/experiments/{exp_id}").json(), finished, "the resumed search")
    assert state["status"] == "succeeded" and state["trials_done"] == budget
    assert state["result"]["devices"]["cpu-host"]["resumed_from"] >= kept


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_sigkill_in_the_middle_of_a_search_keeps_its_trials(serve, tmp_path, request, backend):
    """SQLite: the restarted server resumes the search by itself. PostgreSQL: restarted with --no-resume, the
    experiment shows as interrupted until POST /resume. Either way the finished trials are kept, not re-run."""
    db = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    runs, budget = tmp_path / "runs", 2000
    first = serve(runs_dir=runs, db=db)
    with first.client() as c:
        exp_id = c.post("/experiments", json=spec(budget=budget, devices=("cpu-host",), strategy="random")).json()["id"]
        before = wait_for(lambda: c.get(f"/experiments/{exp_id}").json(),
                          lambda s: s["trials_done"] > 0 or finished(s), "first trials", poll_s=0.02)
    first.kill()
    assert before["status"] == "running"
    from nas.service.store import Store

    store = Store(db or f"sqlite:///{runs / 'nas.db'}")
    study_name = f"t-{exp_id}:cpu-host"
    kept = [t for t in optuna.load_study(study_name=study_name, storage=store.optuna_storage()).trials
            if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(kept) >= before["trials_done"] > 0
    if backend == "postgresql":
        second = serve(runs_dir=runs, db=db, args=["--no-resume"])
        with second.client() as c:
            state = c.get(f"/experiments/{exp_id}").json()
            assert state["status"] == "interrupted" and state["interruptions"] == 1
            assert c.post(f"/experiments/{exp_id}/resume").status_code == 202
            state = wait_for(lambda: c.get(f"/experiments/{exp_id}").json(), finished, "the resumed search")
    else:
        second = serve(runs_dir=runs, db=db)
        with second.client() as c:
            state = wait_for(lambda: c.get(f"/experiments/{exp_id}").json(), finished, "the resumed search")
    assert state["status"] == "succeeded" and state["interruptions"] == 1 and state["trials_done"] == budget
    assert state["result"]["devices"]["cpu-host"]["resumed_from"] >= len(kept)
    after = optuna.load_study(study_name=study_name, storage=store.optuna_storage()).trials
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in after) == budget
    kept_numbers = {t.number: t.values for t in kept}
    assert {t.number: t.values for t in after if t.number in kept_numbers} == kept_numbers
    store.close()


@pytest.mark.slow
def test_search_a_run_then_export_its_best_arch(serve, tmp_path, tiny_run):
    """A search over a trained run (accuracy from its predictor), then the best arch for a device exported by
    naming the experiment only; the zip downloaded and opened holds that arch."""
    runs = tmp_path / "runs"
    shutil.copytree(tiny_run, runs / "tiny")
    server = serve(runs_dir=runs)
    arch = SearchSpace.preset(SPACE).smallest(24).to_dict()
    with server.client() as c:
        assert c.get("/runs/tiny").json()["weights"] is True
        d = detail(c.post("/exports", json={"run": "tiny", "device": "cpu-host", "arch": arch, "formats": ["gif"]}))
        assert d[0]["loc"] == ["body", "formats", 0] and "safetensors" in d[0]["msg"]
        for budget in ("150%", "3 epochs", -1):
            d = detail(c.post("/exports", json={"run": "tiny", "device": "cpu-host", "arch": arch, "finetune": budget}))
            assert d[0]["loc"] == ["body", "finetune"] and "field 'finetune'" in d[0]["msg"]
        d = detail(c.post("/exports", json={"run": "../tiny", "device": "cpu-host", "arch": arch}))
        assert d[0]["loc"] == ["body", "run"]
        bad = {**arch, "ks": [9] * len(arch["ks"])}
        assert detail(c.post("/exports", json={"run": "tiny", "device": "cpu-host", "arch": bad}))[0]["loc"] == \
            ["body", "arch"]
        body = spec(budget=40, devices=("cpu-host",))
        body.pop("space")
        body.update(run="tiny", objectives={"accuracy": "maximize", "latency_ms": "minimize"})
        r = c.post("/experiments", json=body)
        assert r.status_code == 202, r.text
        exp_id = r.json()["id"]
        d = detail(c.post("/exports", json={"experiment": exp_id, "device": "stm32f746"}))
        assert d[0]["loc"] == ["body", "device"]  # not searched (and nothing found yet)
        state = wait_for(lambda: c.get(f"/experiments/{exp_id}").json(), finished, "the search")
        assert state["status"] == "succeeded", state
        best = state["best"]["cpu-host"]
        assert 0 < best["predicted"]["accuracy"] <= 1 and best["predicted"]["latency_ms"] <= 2.5
        r = c.post("/exports", json={"experiment": exp_id, "device": "cpu-host", "formats": ["safetensors"]})
        assert r.status_code == 202, r.text
        ex_id = r.json()["id"]
        early = c.get(f"/exports/{ex_id}/download")
        assert early.status_code in (200, 409)
        state = wait_for(lambda: c.get(f"/exports/{ex_id}").json(), finished, "the export")
        assert state["status"] == "succeeded", state
        assert state["run"] == "tiny" and state["experiment"] == exp_id
        assert {"arch.json", "card.json", "weights.safetensors"} <= set(state["files"])
        got = c.get(state["download"])
        assert [e["id"] for e in c.get("/exports").json()] == [ex_id]
    assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(got.content)) as zf:
        assert set(state["files"]) == set(zf.namelist())
        card = json.loads(zf.read("card.json"))
        exported = json.loads(zf.read("arch.json"))
    assert card["device"]["name"] == "cpu-host"
    assert {k: exported[k] for k in ("ks", "e", "d", "r")} == best["arch"]


def test_formats_match_the_exporter():
    from nas.api.schemas import EXPORT_FORMATS
    from nas.export import FORMATS

    assert tuple(EXPORT_FORMATS) == tuple(FORMATS)
