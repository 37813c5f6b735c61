"""What an adversarial client tried (issue 23), each refused as a 4xx naming the field, on SQLite and PostgreSQL
where the store is involved: huge budgets and names, YAML alias bombs, unchecked strategy options and seeds, a
client's network address, NaN in profiles, CSV fits on the event loop, chunked oversized bodies, absurd archs,
the OpenAPI document against what the app answers, and the token before the body."""

from __future__ import annotations

import io
import threading
import warnings

import pytest

from supernet import SearchSpace

SPACE = "tiny-mbv3"
TOKEN = "hardening-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SPEC = {"name": "h", "space": SPACE, "devices": ["stm32f746"], "objectives": {"latency_ms": "minimize"},
        "budget": 10}


@pytest.fixture
def app_client(tmp_path, monkeypatch):
    """A factory of in-process API clients (no job runner) over this test's runs folder and a given store."""
    from nas.api import create_app
    from nas.service.settings import Settings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    opened = []

    def make(db_url: str | None = None, token: str | None = TOKEN):
        monkeypatch.setenv("NAS_PROFILES_DIR", str(tmp_path / "runs" / "profiles"))  # restored after the test
        app = create_app(Settings(runs_dir=tmp_path / "runs", db_url=db_url, token=token), start_jobs=False)
        client = TestClient(app, headers=AUTH if token else {})
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def detail(r) -> list[dict]:
    assert r.status_code == 422, (r.status_code, r.text[:500])
    return r.json()["detail"]


# ---------------------------------------------------------------- 1, 2: numbers and names the store cannot hold
@pytest.mark.parametrize("extra, loc", [
    ({"budget": 2**63}, ["body", "budget"]),
    ({"budget": 2**62, "devices": ["stm32f746", "cpu-host"]}, ["body", "budget"]),
    ({"budget": 2**31}, ["body", "budget"]),
    ({"name": "n" * 243}, ["body", "name"]),
    ({"devices": ["stm32f746"] * 33}, ["body", "devices"]),
])
def test_numbers_and_names_beyond_the_store_are_422(app_client, db_url, extra, loc):
    c = app_client(db_url)
    d = detail(c.post("/experiments", json={**SPEC, **extra}))
    assert d[0]["loc"] == loc
    assert c.get("/experiments").json() == []
    ok = c.post("/experiments", json={**SPEC, "name": "n" * 128, "budget": 1_000_000})
    assert ok.status_code == 202, ok.text
    assert c.get(ok.headers["location"]).json()["budget"] == 1_000_000


def test_the_store_itself_refuses_what_postgresql_would(db_url):
    from sqlalchemy.exc import DBAPIError

    from nas.service.store import Experiment, Store

    store = Store(db_url).create()
    for values in ({"budget": 2**31}, {"name": "n" * 256}, {"budget": -1}):
        with pytest.raises(DBAPIError):
            with store.session() as s:
                job = store.add_job(s, "search", "x")
                s.add(Experiment(**{"id": "e1", "name": "ok", "spec": {}, "out_dir": "/x", "study_name": "s",
                                    "job_id": job.id, "budget": 1, **values}))
    assert store.jobs() == []
    store.close()


# ---------------------------------------------------------------- 3: YAML alias bombs
def _bomb(levels: int = 8) -> str:
    lines = ['  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(levels):
        prev, cur = chr(97 + i), chr(98 + i)
        lines.append(f"  {cur}: &{cur} [{', '.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_before_it_expands(app_client, db_url):
    c = app_client(db_url)
    body = ("name: h\nspace: tiny-mbv3\ndevices: [stm32f746]\nobjectives: {latency_ms: minimize}\nbudget: 5\n"
            "strategy: random\nstrategy_options:\n" + _bomb())
    assert len(body) < 1000
    d = detail(c.post("/experiments", content=body, headers={"content-type": "application/yaml"}))
    assert d[0]["loc"] == ["body"] and "expands to more than" in d[0]["msg"]
    assert c.get("/experiments").json() == []
    profile = "name: bomb-board\nkind: cpu\nspecs: {}\nlatency:\n  corrections: {}\n  fidelity:\n" + _bomb()
    d = detail(c.post("/devices", files={"file": ("b.yaml", profile.encode(), "application/yaml")}))
    assert d[0]["loc"] == ["body", "file"] and "expands to more than" in d[0]["msg"]


def test_anchors_within_the_bound_still_work(app_client):
    c = app_client()
    body = ("name: anchored\nspace: tiny-mbv3\nbudget: 5\nobjectives: {latency_ms: minimize}\n"
            "devices: [{name: stm32f746, constraints: &c {latency_ms: 500}}, {name: cpu-host, constraints: *c}]\n")
    r = c.post("/experiments", content=body, headers={"content-type": "application/yaml"})
    assert r.status_code == 202, r.text


def test_deeply_nested_json_is_422_not_500(app_client):
    c = app_client()
    d = detail(c.post("/experiments", content=b"[" * 100_000, headers={"content-type": "application/json"}))
    assert d[0]["loc"] == ["body"]


# ---------------------------------------------------------------- 4, 5: strategy options, seeds, addresses
@pytest.mark.parametrize("extra, loc, needle", [
    ({"strategy": "evolution", "strategy_options": {"population": 1}}, ["body", "strategy_options"],
     "population must be >= 2"),
    ({"strategy": "evolution", "strategy_options": {"popsize": 9}}, ["body", "strategy_options"],
     "unknown option(s) 'popsize'; allowed: population, parents_ratio"),
    ({"strategy": "evolution", "strategy_options": {"population": "many"}}, ["body", "strategy_options"],
     "option 'population'"),
    ({"strategy": "optuna-nsga2", "strategy_options": {"crossover_prob": 2.0}}, ["body", "strategy_options"],
     "crossover_prob"),
    ({"strategy_options": {"population": 5}}, ["body", "strategy_options"], "options need field 'strategy'"),
    ({"seed": -1}, ["body", "seed"], "greater than or equal to 0"),
    ({"seed": 2**32}, ["body", "seed"], "less than or equal to"),
    ({"strategy": "ray-tune", "strategy_options": {"ray_address": "127.0.0.1:1"}},
     ["body", "strategy_options", "ray_address"], "set by the server (nas serve --ray-address)"),
])
def test_strategy_options_and_seed_are_checked_at_creation(app_client, extra, loc, needle):
    c = app_client()
    d = detail(c.post("/experiments", json={**SPEC, **extra}))
    assert d[0]["loc"] == loc and needle in d[0]["msg"], d
    assert c.get("/experiments").json() == []


def test_the_worker_refuses_a_client_address_too(tmp_path):
    """A spec stored before this check (or written into the store by hand) meets the same check in the worker."""
    from nas.experiment import ExperimentSpec, SpecError, run_experiment

    spec = ExperimentSpec.model_validate({**SPEC, "devices": [{"name": "stm32f746"}], "strategy": "ray-tune",
                                          "strategy_options": {"ray_address": "127.0.0.1:1"}})
    with pytest.raises(SpecError, match="strategy_options.ray_address': set by the server"):
        run_experiment(spec, tmp_path / "out", from_client=True)
    assert not (tmp_path / "out").exists()


def test_the_servers_ray_address_reaches_its_workers_and_tokens_do_not(tmp_path, monkeypatch):
    from nas.service.jobs import worker_env
    from nas.service.settings import Settings

    monkeypatch.setenv("NAS_API_TOKEN_FILE", str(tmp_path / "t"))
    (tmp_path / "t").write_text("from-file\n")
    settings = Settings.from_env(runs_dir=tmp_path, ray_address="10.0.0.5:6379")
    env = worker_env(settings)
    assert env["NAS_RAY_ADDRESS"] == "10.0.0.5:6379"
    assert "NAS_API_TOKEN" not in env and "NAS_API_TOKEN_FILE" not in env
    assert settings.token == "from-file"


# ---------------------------------------------------------------- 6, 7: device profiles
BOARD = """name: nan-board
kind: mcu
specs:
  clock: {value: 216, unit: MHz, source: spec-sheet}
  sram: {value: 320, unit: KB, source: spec-sheet}
  flash: {value: 1, unit: MB, source: spec-sheet}
  launch_overhead: {value: 5, unit: us, source: spec-sheet}
"""


@pytest.mark.parametrize("old, new, where", [
    ("value: 216", "value: .nan", ["body", "file", "specs"]),
    ("value: 5,", "value: .inf,", ["body", "file", "specs"]),
    ("value: 320", "value: -.inf", ["body", "file", "specs"]),
])
def test_profiles_with_nan_or_infinity_are_refused(app_client, old, new, where):
    c = app_client()
    d = detail(c.post("/devices", files={"file": ("b.yaml", BOARD.replace(old, new).encode(), "application/yaml")}))
    assert d[0]["loc"][:3] == where and ("finite" in d[0]["msg"] or "nan" in d[0]["msg"].lower()), d
    assert c.post("/devices", files={"file": ("b.yaml", BOARD.encode(), "application/yaml")}).status_code == 201


def _csv(n: int, bad_row: int | None = None) -> bytes:
    space = SearchSpace.preset(SPACE)
    out = io.StringIO()
    out.write("arch,latency_ms\n")
    for i, a in enumerate(space.sample_many(n, 7)):
        ms = "nan" if i == bad_row else f"{1.0 + 0.01 * sum(a.ks)}"
        out.write('"' + a.to_json().replace('"', '""') + f'",{ms}\n')
    return out.getvalue().encode()


def test_a_csv_with_nan_latency_names_the_row(app_client):
    c = app_client()
    d = detail(c.post("/devices", files={"file": ("m.csv", _csv(12, bad_row=4), "text/csv")},
                      data={"name": "csv-board", "space": SPACE, "kind": "cpu"}))
    assert d[0]["loc"] == ["body", "file", 6] and "positive finite" in d[0]["msg"]


def test_a_csv_fit_runs_off_the_event_loop_after_the_name_check(app_client, monkeypatch):
    from predictors.learned import LearnedLatency

    c = app_client()
    fits: list[int] = []
    started, release = threading.Event(), threading.Event()
    released: list[bool] = []
    real_fit = LearnedLatency.fit

    def slow_fit(self, codes, y):
        fits.append(len(y))
        started.set()
        released.append(release.wait(60))  # held until the test has had /healthz answered meanwhile
        return real_fit(self, codes, y)

    monkeypatch.setattr(LearnedLatency, "fit", slow_fit)
    d = detail(c.post("/devices", files={"file": ("m.csv", _csv(12), "text/csv")},
                      data={"name": "../bad name", "space": SPACE, "kind": "cpu"}))
    assert d[0]["loc"] == ["body", "name"] and fits == []  # refused before any fit
    taken = c.post("/devices", files={"file": ("m.csv", _csv(12), "text/csv")},
                   data={"name": "stm32f746", "space": SPACE, "kind": "cpu"})
    assert taken.status_code == 409 and fits == []

    answer = {}
    upload = threading.Thread(target=lambda: answer.update(r=c.post(
        "/devices", files={"file": ("m.csv", _csv(12), "text/csv")}, data={"name": "csv-board", "space": SPACE, "kind": "cpu"})))
    upload.start()
    assert started.wait(60)
    assert c.get("/healthz").status_code == 200  # answered while the fit still waits
    release.set()
    upload.join(120)
    assert released[0] is True and answer["r"].status_code == 201, answer["r"].text  # released, not timed out


# ---------------------------------------------------------------- 8: chunked bodies over the limit
@pytest.mark.parametrize("path", ["/predict", "/experiments", "/devices"])
def test_an_oversized_chunked_body_is_413(app_client, path):
    c = app_client()

    def chunks():
        for _ in range(5):
            yield b"x" * (1024 * 1024)

    r = c.post(path, content=chunks(), headers={"content-type": "application/json"})
    assert r.request.headers.get("transfer-encoding") == "chunked" and "content-length" not in r.request.headers
    assert r.status_code == 413 and "limit" in r.json()["detail"]


# ---------------------------------------------------------------- 9: archs
def test_absurd_resolutions_and_inactive_slots_are_named(app_client):
    c = app_client()
    small = SearchSpace.preset(SPACE).smallest().to_dict()  # depth 2 of 4: slot 3 of each stage is inactive
    for arch, field, needle in [
        ({**small, "r": 2**63}, ["r"], "between 8 and 4096 px"),
        ({**small, "r": 5000}, ["r"], "between 8 and 4096 px"),
        ({**small, "ks": small["ks"][:3] + [-5] + small["ks"][4:]}, ["ks", 3], "inactive slot"),
        ({**small, "e": small["e"][:3] + [5] + small["e"][4:]}, ["e", 3], "inactive slot"),
    ]:
        d = detail(c.post("/predict", json={"space": SPACE, "devices": ["stm32f746"], "archs": [small, arch]}))
        assert d[0]["loc"] == ["body", "archs", 1, *field] and needle in d[0]["msg"], d
    ok = c.post("/predict", json={"space": SPACE, "devices": ["stm32f746"], "archs": [{**small, "r": 4096}]})
    assert ok.status_code == 200


# ---------------------------------------------------------------- 10: the OpenAPI document and methods
def test_the_document_lists_the_statuses_and_security_as_configured(app_client):
    with_token = app_client().get("/openapi.json").json()
    ops = {(m.upper(), p): op for p, item in with_token["paths"].items() for m, op in item.items()}
    assert len(ops) >= 19
    for (method, path), op in ops.items():
        codes = set(op["responses"])
        if path == "/healthz":
            assert "security" not in op and "401" not in codes
            continue
        assert op["security"] and "401" in codes, (method, path)
        if "requestBody" in op:
            assert {"400", "413", "422"} <= codes, (method, path)
        if "{" in path:
            assert {"404", "422"} <= codes, (method, path)
    assert {"409", "410"} <= set(ops[("GET", "/exports/{export_id}/download")]["responses"])
    assert "409" in ops[("POST", "/devices")]["responses"]
    assert with_token["components"]["securitySchemes"]

    without = app_client(token=None).get("/openapi.json").json()
    assert "securitySchemes" not in without.get("components", {})
    assert not [op for item in without["paths"].values() for op in item.values() if "security" in op]
    assert not [op for item in without["paths"].values() for op in item.values() if "401" in op["responses"]]


def test_options_and_405_list_every_method_of_the_path(app_client):
    c = app_client()
    r = c.options("/experiments")
    assert r.status_code == 204 and r.headers["allow"] == "GET, OPTIONS, POST"
    r = c.delete("/experiments")
    assert r.status_code == 405 and r.headers["allow"] == "GET, OPTIONS, POST"
    r = c.put("/devices/stm32f746")
    assert r.status_code == 405 and r.headers["allow"] == "GET, OPTIONS"


# ---------------------------------------------------------------- 12: the token
@pytest.mark.parametrize("path, body", [("/predict", b"{not json"), ("/experiments", b"{not json"),
                                        ("/exports", b"[]")])
def test_no_token_is_401_before_the_body_is_looked_at(app_client, path, body):
    c = app_client()
    r = c.post(path, content=body, headers={"content-type": "application/json", "Authorization": ""})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = c.post(path, content=body, headers={"content-type": "application/json", "Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert c.post(path, content=body, headers={"content-type": "application/json"}).status_code == 422


def test_token_settings_from_a_file_or_the_environment(tmp_path, monkeypatch):
    from nas.service.settings import Settings

    monkeypatch.delenv("NAS_API_TOKEN_FILE", raising=False)
    monkeypatch.setenv("NAS_API_TOKEN", "from-env")
    assert Settings.from_env().token == "from-env"
    (tmp_path / "tok").write_text("  from-file  \nignored\n")
    assert Settings.from_env(token_file=str(tmp_path / "tok")).token == "from-file"
    assert Settings.from_env(token="flag", token_file=str(tmp_path / "tok")).token == "flag"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        Settings.from_env(token_file=str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="cannot read the token file"):
        Settings.from_env(token_file=str(tmp_path / "missing"))


# ---------------------------------------------------------------- 5: a worker stuck where it cannot check
STUCK_WORKER = """
import signal, sys, time
import nas.service.worker as w
w.STOP_GRACE_S = 0.5
def stuck(store, settings, job, ctx):  # as ray.init against an address that never answers: it replaces
    signal.signal(signal.SIGTERM, lambda *_: None)  # the SIGTERM handler, then waits where nothing checks a flag
    print("started", flush=True)
    time.sleep(600)
    return False
w.HANDLERS["search"] = stuck
w.run_job(sys.argv[1])
"""


@pytest.mark.parametrize("cancel", [False, True])
def test_a_stuck_worker_still_stops_on_sigterm_and_records_why(tmp_path, cancel):
    import os
    import signal
    import subprocess
    import sys

    from nas.service.store import Store

    url = f"sqlite:///{tmp_path / 'nas.db'}"
    store = Store(url).create()
    with store.session() as s:
        job_id = store.add_job(s, "search", "x").id
    env = {**os.environ, "NAS_DB_URL": url, "NAS_RUNS_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-c", STUCK_WORKER, job_id], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "started"
        if cancel:
            store.update_job(job_id, cancel_requested=True)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0  # not the 600 s the job would have slept
    finally:
        proc.kill()
    job = store.job(job_id)
    assert job.status == ("cancelled" if cancel else "interrupted") and job.pid is None
    assert job.interruptions == (0 if cancel else 1)
    store.close()


# ---------------------------------------------------------------- 11: objective names for optuna-dashboard
def test_studies_name_their_objectives_for_optuna_dashboard(tmp_path):
    import optuna

    from nas.search import run

    url = f"sqlite:///{tmp_path / 's.db'}"
    run({"a": [1, 2, 3], "b": [1, 2]}, lambda c: (c["a"] + c["b"], c["a"] * c["b"]),
        directions={"latency_ms": "minimize", "accuracy": "maximize"}, budget=4, seed=0, strategy="random",
        storage=url, study_name="named")
    study = optuna.load_study(study_name="named", storage=url)
    assert study.metric_names == ["latency_ms", "accuracy"]
    assert {"values_latency_ms", "values_accuracy"} <= set(study.trials_dataframe().columns)


# ---------------------------------------------------------------- 12 and 8 over a socket: `nas serve` itself
def test_serve_takes_its_token_from_a_file_and_answers_chunked_floods_413(serve, tmp_path):
    import httpx

    (tmp_path / "token").write_text("file-token\n")
    server = serve(args=["--token-file", str(tmp_path / "token")])
    assert "file-token" not in " ".join(server.proc.args)
    assert httpx.get(server.url + "/spaces").status_code == 401
    assert httpx.get(server.url + "/spaces", headers={"Authorization": "Bearer file-token"}).status_code == 200

    def chunks():  # just past the 4 MiB limit, so the server's 413 comes when little is left to send
        for _ in range(65):
            yield b"[" * (64 * 1024)

    r = httpx.post(server.url + "/predict", content=chunks(), timeout=60,
                   headers={"Authorization": "Bearer file-token", "content-type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    assert "Traceback" not in server.log()


def test_token_on_the_command_line_warns(tmp_path):
    import os
    import subprocess
    import sys

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("NAS_")}, "NAS_WORKERS": "none"}
    r = subprocess.run([sys.executable, "-m", "nas", "serve", "--token", "visible", "--runs-dir", str(tmp_path)],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2  # NAS_WORKERS=none stops it before it serves
    assert "warning: --token shows the token" in r.stderr and "--token-file" in r.stderr
