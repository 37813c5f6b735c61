"""The REST API through a real `nas serve` over HTTP: health, spaces, devices, runs, predict, and every kind of bad
input (422 with the field's path and allowed values, 404, 401, 413, path traversal)."""

from __future__ import annotations

import io

import httpx
import pytest

from supernet import SearchSpace
from supernet.run import RunInfo, write_run_info

SPACE = "tiny-mbv3"


@pytest.fixture(scope="module")
def api(shared_server):
    with shared_server.client() as c:
        yield c


def archs(n: int, seed: int = 0) -> list[dict]:
    return [a.to_dict() for a in SearchSpace.preset(SPACE).sample_many(n, seed)]


def test_healthz_needs_no_token(shared_server):
    r = httpx.get(shared_server.url + "/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["database"] == "sqlite" and body["workers"] == 2


@pytest.mark.parametrize("path", ["/spaces", "/devices", "/runs", "/experiments", "/exports"])
def test_every_other_route_needs_the_token(shared_server, path):
    assert httpx.get(shared_server.url + path).status_code == 401
    wrong = httpx.get(shared_server.url + path, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    r = httpx.post(shared_server.url + "/predict", json={"space": SPACE, "devices": ["stm32f746"], "archs": archs(1)})
    assert r.status_code == 401
    assert httpx.get(shared_server.url + path, headers={"Authorization": "Bearer secret"}).status_code == 200


def test_openapi_lists_every_resource(shared_server):
    paths = httpx.get(shared_server.url + "/openapi.json").json()["paths"]
    for p in ("/healthz", "/spaces", "/devices", "/devices/{name}", "/runs", "/runs/{run_id}", "/predict",
              "/experiments", "/experiments/{exp_id}", "/experiments/{exp_id}/pareto", "/experiments/{exp_id}/cancel",
              "/exports", "/exports/{export_id}", "/exports/{export_id}/download"):
        assert p in paths, p


def test_spaces(api):
    spaces = {s["name"]: s for s in api.get("/spaces").json()}
    assert SPACE in spaces and "ofa-mbv3-w1.0" in spaces
    tiny = SearchSpace.preset(SPACE)
    assert spaces[SPACE]["size"] == str(tiny.size()) and spaces[SPACE]["kernel_choices"] == list(tiny.kernel_choices)
    assert api.get(f"/spaces/{SPACE}").json()["num_blocks"] == tiny.num_blocks
    assert api.get("/spaces/nope").status_code == 404


def test_devices(api):
    devices = {d["name"]: d for d in api.get("/devices").json()}
    assert {"stm32f746", "cpu-host", "nvidia-t4"} <= set(devices)
    mcu = api.get("/devices/stm32f746").json()
    assert mcu["kind"] == "mcu" and mcu["origin"] == "shipped" and mcu["specs"]["sram"]["unit"]
    assert api.get("/devices/nope").status_code == 404
    assert api.get("/devices/..%2F..%2Fetc%2Fpasswd").status_code == 404


def test_predict_matches_the_library(api):
    from predictors import Predictors

    batch = archs(20, seed=1)
    r = api.post("/predict", json={"space": SPACE, "devices": ["stm32f746", "nvidia-t4"], "archs": batch})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["latency_source"] == {"stm32f746": "mcu", "nvidia-t4": "roofline"}
    rows = body["predictions"]
    assert len(rows) == 40 and [row["arch_index"] for row in rows[:20]] == list(range(20))
    want = Predictors(SPACE, "stm32f746").predict(SearchSpace.preset(SPACE).encode(
        [SearchSpace.preset(SPACE).arch_from_dict(a) for a in batch]))
    mcu = [row for row in rows if row["device"] == "stm32f746"]
    assert [row["macs"] for row in mcu] == want["macs"].tolist()
    assert [row["latency_ms"] for row in mcu] == pytest.approx(want["latency_ms"].tolist())
    assert [row["fits"] for row in mcu] == want["fits"].tolist()
    assert all(row["accuracy"] is None for row in rows)  # no run given: no accuracy


def detail(r: httpx.Response) -> list[dict]:
    assert r.status_code == 422, r.text
    items = r.json()["detail"]
    assert isinstance(items, list) and all({"loc", "msg", "type"} <= set(i) for i in items)
    return items


def test_predict_bad_inputs_name_the_field(api):
    good = archs(3)
    d = detail(api.post("/predict", json={"space": "nope", "devices": ["stm32f746"], "archs": good}))
    assert d[0]["loc"] == ["body", "space"] and SPACE in d[0]["ctx"]["allowed"]
    d = detail(api.post("/predict", json={"space": SPACE, "devices": ["stm32f746", "toaster"], "archs": good}))
    assert d[0]["loc"] == ["body", "devices", 1] and "stm32f746" in d[0]["ctx"]["allowed"]
    bad = [dict(a) for a in good]
    bad[2]["ks"] = list(bad[2]["ks"])
    bad[2]["ks"][4] = 4
    d = detail(api.post("/predict", json={"space": SPACE, "devices": ["stm32f746"], "archs": bad}))
    assert d[0]["loc"] == ["body", "archs", 2, "ks", 4] and "allowed" in d[0]["msg"]
    d = detail(api.post("/predict", json={"space": SPACE, "devices": ["stm32f746"], "archs": [{**good[0], "w": 1}]}))
    assert d[0]["loc"] == ["body", "archs", 0, "w"]
    d = detail(api.post("/predict", json={"space": SPACE, "devices": [], "archs": good}))
    assert d[0]["loc"] == ["body", "devices"]
    d = detail(api.post("/predict", json={"space": SPACE, "devices": ["stm32f746"], "archs": good, "run": "../etc"}))
    assert d[0]["loc"] == ["body", "run"]
    d = detail(api.post("/predict", content=b"{not json", headers={"content-type": "application/json"}))
    assert d[0]["loc"][0] == "body"


def test_unknown_ids_are_404(api):
    for path in ("/runs/nope", "/experiments/nope", "/experiments/nope/pareto?device=x", "/exports/nope",
                 "/exports/nope/download"):
        r = api.get(path)
        assert r.status_code == 404, path
        assert "not found" in r.json()["detail"]
    assert api.post("/experiments/nope/cancel").status_code == 404
    assert api.post("/experiments/nope/resume").status_code == 404


@pytest.mark.parametrize("path", ["/runs/..", "/runs/..%2F..%2F..%2Fetc", "/runs/%2Fetc%2Fpasswd",
                                  "/exports/..%2Fnas.db/download", "/runs/.hidden"])
def test_path_traversal_finds_nothing(api, path):
    assert api.get(path).status_code == 404


def test_oversize_body_is_413(api):
    big = b"x" * (5 * 1024 * 1024)
    r = api.post("/devices", files={"file": ("big.yaml", big, "application/yaml")})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    r = api.post("/predict", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_runs_discovered_from_run_json(shared_server, api):
    run = shared_server.runs_dir / "r1"
    run.mkdir(exist_ok=True)
    write_run_info(run, RunInfo("r1", SearchSpace.preset(SPACE).to_dict(), {}, finished=True, checkpoint_hash="abc"))
    (shared_server.runs_dir / "not-a-run").mkdir(exist_ok=True)
    runs = {r["id"]: r for r in api.get("/runs").json()}
    assert "r1" in runs and "not-a-run" not in runs
    assert runs["r1"]["space"] == SPACE and runs["r1"]["finished"] and not runs["r1"]["weights"]
    one = api.get("/runs/r1").json()
    assert one["checkpoint_hash"] == "abc" and one["space_config"]["name"] == SPACE


def test_predict_with_a_run_adds_accuracy(shared_server, api, tiny_run):
    import shutil

    from predictors import Predictors

    shutil.copytree(tiny_run, shared_server.runs_dir / "tiny", dirs_exist_ok=True)
    batch = archs(8, seed=4)
    r = api.post("/predict", json={"space": SPACE, "devices": ["stm32f746"], "archs": batch, "run": "tiny"})
    assert r.status_code == 200, r.text
    want = Predictors.for_run(tiny_run, "stm32f746").predict(
        [SearchSpace.preset(SPACE).arch_from_dict(a) for a in batch])
    assert [row["accuracy"] for row in r.json()["predictions"]] == pytest.approx(want["accuracy"].tolist())
    run = api.get("/runs/tiny").json()
    assert "accuracy_predictor" in run["predictors"] and run["weights"]
    fid = run["fidelity"]["accuracy_predictor/manifest.json"]
    assert {"spearman", "kendall", "rmse"} <= set(fid)


PROFILE = """
name: my-board
kind: mcu
description: a board uploaded in a test
specs:
  clock: {value: 216, unit: MHz, source: spec-sheet}
  sram: {value: 320, unit: KB, source: spec-sheet}
  flash: {value: 1, unit: MB, source: spec-sheet}
mcu:
  cycles_per_mac_conv: {value: 1.6, unit: cycles/MAC, source: spec-sheet}
  cycles_per_mac_pointwise: {value: 1.1, unit: cycles/MAC, source: spec-sheet}
  cycles_per_mac_depthwise: {value: 2.2, unit: cycles/MAC, source: spec-sheet}
  cycles_per_mac_linear: {value: 1.3, unit: cycles/MAC, source: spec-sheet}
  cycles_per_elem_pool: {value: 1.0, unit: cycles/MAC, source: spec-sheet}
  layer_overhead: {value: 4000, unit: cycles, source: spec-sheet}
"""


def test_upload_a_profile_then_predict_with_it(api):
    r = api.post("/devices", files={"file": ("my-board.yaml", PROFILE.encode(), "application/yaml")})
    assert r.status_code == 201, r.text
    assert r.json()["origin"] == "uploaded" and r.json()["kind"] == "mcu"
    assert "my-board" in [d["name"] for d in api.get("/devices").json()]
    again = api.post("/devices", files={"file": ("my-board.yaml", PROFILE.encode(), "application/yaml")})
    assert again.status_code == 409
    r = api.post("/predict", json={"space": SPACE, "devices": ["my-board"], "archs": archs(2)})
    assert r.status_code == 200 and r.json()["latency_source"] == {"my-board": "mcu"}
    shadow = api.post("/devices", files={"file": ("x.yaml", PROFILE.replace("my-board", "stm32f746").encode(),
                                                  "application/yaml")})
    assert shadow.status_code == 409


def test_a_profile_the_predictors_cannot_use_is_422_on_that_device(api):
    lacking = PROFILE.split("mcu:")[0].replace("my-board", "bare-board")
    assert api.post("/devices", files={"file": ("b.yaml", lacking.encode(), "application/yaml")}).status_code == 201
    d = detail(api.post("/predict", json={"space": SPACE, "devices": ["stm32f746", "bare-board"], "archs": archs(1)}))
    assert d[0]["loc"] == ["body", "devices", 1] and "cycles_per_mac" in d[0]["msg"]


def test_bad_profile_upload_names_the_field(api):
    bad = PROFILE.replace("kind: mcu", "kind: toaster")
    d = detail(api.post("/devices", files={"file": ("b.yaml", bad.encode(), "application/yaml")}))
    assert d[0]["loc"] == ["body", "file", "kind"] and "'cpu', 'gpu' or 'mcu'" in d[0]["msg"]
    bad = PROFILE.replace("unit: MHz", "unit: parsecs")
    d = detail(api.post("/devices", files={"file": ("b.yaml", bad.encode(), "application/yaml")}))
    assert d[0]["loc"][:3] == ["body", "file", "specs"] and "allowed units" in d[0]["msg"]
    d = detail(api.post("/devices", files={"file": ("b.yaml", b"name: [unclosed", "application/yaml")}))
    assert d[0]["loc"] == ["body", "file"]
    d = detail(api.post("/devices", files={"file": ("b.yaml", PROFILE.replace("my-board", "../../evil").encode(),
                                                    "application/yaml")}))
    assert d[0]["loc"] == ["body", "name"]
    d = detail(api.post("/devices"))
    assert d[0]["loc"] == ["body", "file"]


def test_fit_a_device_from_measurements(api):
    from predictors import Predictors

    space = SearchSpace.preset(SPACE)
    sample = space.sample_many(40, 3)
    truth = Predictors(space, "nvidia-t4").predict(sample)["latency_ms"].to_numpy() * 3.0 + 0.2
    text = io.StringIO()
    text.write("arch,latency_ms\n")
    for a, ms in zip(sample, truth):
        text.write('"' + a.to_json().replace('"', '""') + f'",{ms}\n')
    r = api.post("/devices", files={"file": ("m.csv", text.getvalue().encode(), "text/csv")},
                 data={"name": "fitted-gpu", "space": SPACE, "kind": "gpu", "base": "nvidia-t4"})
    assert r.status_code == 201, r.text
    assert r.json()["origin"] == "fitted" and "learned" in r.json()["latency_model"]
    pred = api.post("/predict", json={"space": SPACE, "devices": ["fitted-gpu"], "archs": [a.to_dict() for a in sample]})
    assert pred.json()["latency_source"] == {"fitted-gpu": "learned"}
    got = [row["latency_ms"] for row in pred.json()["predictions"]]
    from scipy.stats import spearmanr

    assert spearmanr(got, truth).statistic > 0.9
    d = detail(api.post("/devices", files={"file": ("m.csv", b"arch,latency_ms\n", "text/csv")},
                        data={"name": "x", "space": SPACE, "kind": "cpu"}))
    assert d[0]["loc"] == ["body", "file"]
    d = detail(api.post("/devices", files={"file": ("m.csv", text.getvalue().encode(), "text/csv")},
                        data={"name": "x", "space": "nope"}))
    assert d[0]["loc"] == ["body", "space"] and SPACE in d[0]["ctx"]["allowed"]


def test_fit_a_new_device_without_base(api):
    space = SearchSpace.preset(SPACE)
    sample = space.sample_many(30, 4)
    text = "arch,latency_ms\n" + "".join('"' + a.to_json().replace('"', '""') + f'",{1.0 + 0.1 * i}\n'
                                          for i, a in enumerate(sample))
    upload = {"file": ("m.csv", text.encode(), "text/csv")}
    r = api.post("/devices", files=upload, data={"name": "new-board", "space": SPACE, "kind": "mcu",
                                                 "spec": "sram=256KB,flash=1MB"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "new-board" and body["kind"] == "mcu" and body["origin"] == "fitted"
    assert body["specs"]["sram"]["source"] == "spec-sheet" and body["mcu"]["layer_overhead"]["source"] == "defaulted"
    assert api.get("/devices/new-board").json()["latency_model"] == ["learned", "corrections"]
    d = detail(api.post("/devices", files=upload, data={"name": "nb2", "space": SPACE}))
    assert d[0]["loc"] == ["body", "kind"] and d[0]["ctx"]["allowed"] == ["cpu", "gpu", "mcu"]
    d = detail(api.post("/devices", files=upload, data={"name": "nb2", "space": SPACE, "kind": "mcu"}))
    assert d[0]["loc"] == ["body", "spec"] and "sram and flash" in d[0]["msg"]
    d = detail(api.post("/devices", files=upload, data={"name": "nb2", "space": SPACE, "kind": "mcu",
                                                        "base": "nvidia-t4"}))
    assert d[0]["loc"] == ["body", "kind"] and "is a gpu profile" in d[0]["msg"]
