"""The dashboard at /ui/ and the routes it reads, against a real `nas serve` (token `secret`) over a small store: a
trained tiny run and a finished search over it. The browser tests drive Debian's chromium through Playwright (no
browser download); they skip, saying why, where the browser cannot start."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

from test_jobs import finished, spec, wait_for

ROOT = Path(__file__).resolve().parents[2]
DEVICE = "cpu-host"


def search_spec(budget: int = 60, name: str = "t") -> dict:
    body = spec(budget=budget, devices=(DEVICE,), name=name)
    body.pop("space")
    body.update(run="tiny", objectives={"accuracy": "maximize", "latency_ms": "minimize"})
    return body


@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny_run):
    """A server over a run folder with measured subnets, one finished experiment, and a device with fidelity."""
    from conftest import start_server

    runs = tmp_path_factory.mktemp("dash") / "runs"
    shutil.copytree(tiny_run, runs / "tiny")
    _measured_tables(runs / "tiny")
    server = start_server(runs, token="secret")
    c = server.client()
    c.timeout = httpx.Timeout(300)  # a loaded CI machine; no test here bounds a wall-clock time
    exp_id = c.post("/experiments", json=search_spec()).json()["id"]
    state = wait_for(lambda: c.get(f"/experiments/{exp_id}").json(), finished, "the search")
    assert state["status"] == "succeeded", state
    profile = yaml.safe_load((ROOT / "hw_profiles" / "devices" / f"{DEVICE}.yaml").read_text())
    profile["latency"] = {**profile.get("latency", {}), "fidelity": {"tiny-mbv3": [
        {"predictor": "lookup-table", "n": 40, "spearman": 0.97, "kendall": 0.88, "rmse": 0.05, "mape": 0.04,
         "within_10pct": 0.95, "points": [[1.0, 1.1], [2.0, 1.9], [3.0, 3.2]]}]}}
    r = c.post("/devices", files={"file": ("p.yaml", yaml.safe_dump(profile))}, data={"name": "laptop"})
    assert r.status_code == 201, r.text
    yield {"server": server, "client": c, "exp": exp_id, "state": state}
    c.close()
    server.stop()


def _measured_tables(run_dir: Path) -> None:
    import numpy as np

    from predictors.accuracy.dataset import COLUMNS, heldout_path, measured_path, write_measured
    from supernet import SearchSpace

    ckpt = json.loads((run_dir / "run.json").read_text())["checkpoint_hash"]
    space = SearchSpace.preset("tiny-mbv3")
    for path, n in ((measured_path(run_dir, ckpt), 12), (heldout_path(run_dir, ckpt), 5)):
        archs = space.sample_many(n, n)
        df = pd.DataFrame({"arch": [a.to_json() for a in archs], "accuracy": np.linspace(0.5, 0.9, n),
                           "macs": np.arange(n) * 1e6 + 1e6, "params": 1e5, "r": 28, "seconds": 1.0,
                           "bn_images": 100, "val_images": 100, "checkpoint_hash": ckpt})
        write_measured(path, df[COLUMNS])


# ---------------------------------------------------------------------- API routes the page reads
def test_trials_are_the_finished_table_as_columns(store):
    c, exp_id, state = store["client"], store["exp"], store["state"]
    r = c.get(f"/experiments/{exp_id}/trials", params={"device": DEVICE})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == "result" and body["n"] == 60 == len(body["columns"]["trial"])
    assert body["constraints"] == {"latency_ms": 8.0, "macs": 12e6}
    path = store["server"].runs_dir / "experiments" / exp_id / state["result"]["devices"][DEVICE]["trials"]
    table = pd.read_parquet(path)
    cols = body["columns"]
    assert cols["trial"] == table["trial"].tolist() and cols["feasible"] == table["feasible"].tolist()
    assert cols["latency_ms"] == pytest.approx(table["latency_ms"].tolist(), abs=1e-6)
    assert {"accuracy", "macs", "sram_bytes", "flash_bytes", "params", "front"} <= set(cols)
    pareto = c.get(f"/experiments/{exp_id}/pareto", params={"device": DEVICE}).json()["rows"]
    on_front = {t for t, f in zip(cols["trial"], cols["front"]) if f}
    assert on_front == {row["trial"] for row in pareto}
    chosen = c.get(f"/experiments/{exp_id}/trials/{body['chosen']}", params={"device": DEVICE}).json()
    assert chosen["arch"] == state["best"][DEVICE]["arch"] and chosen["feasible"] is True
    assert chosen["values"]["accuracy"] == pytest.approx(state["best"][DEVICE]["predicted"]["accuracy"])


def test_trial_and_trials_bad_inputs(store):
    c, exp_id = store["client"], store["exp"]
    d = c.get(f"/experiments/{exp_id}/trials", params={"device": "stm32f746"})
    assert d.status_code == 422 and d.json()["detail"][0]["loc"] == ["query", "device"]
    assert d.json()["detail"][0]["ctx"]["allowed"] == [DEVICE]
    assert c.get(f"/experiments/{exp_id}/trials").status_code == 422  # device is required
    assert c.get("/experiments/0123456789ab/trials", params={"device": DEVICE}).status_code == 404
    assert c.get(f"/experiments/{exp_id}/trials/100000", params={"device": DEVICE}).status_code == 404
    assert c.get(f"/experiments/{exp_id}/trials/-1", params={"device": DEVICE}).status_code == 422
    assert c.get(f"/experiments/{exp_id}/trials", params={"device": "../x"}).status_code == 422


@pytest.fixture(scope="module")
def running(store):
    """A long search, running once its first trials are recorded; cancelled by the browser test (or at the end)."""
    c = store["client"]
    exp_id = c.post("/experiments", json=search_spec(budget=20000, name="live")).json()["id"]
    wait_for(lambda: c.get(f"/experiments/{exp_id}").json(), lambda s: s["trials_done"] > 0 or finished(s),
             "the first trials")
    yield exp_id
    c.post(f"/experiments/{exp_id}/cancel")
    wait_for(lambda: c.get(f"/experiments/{exp_id}").json(), finished, "the cancel")


@pytest.mark.slow
def test_trials_while_running_come_from_the_study(store, running):
    c = store["client"]
    state = c.get(f"/experiments/{running}").json()
    assert state["status"] == "running", state
    body = c.get(f"/experiments/{running}/trials", params={"device": DEVICE}).json()
    assert body["source"] == "study" and body["n"] >= state["trials_done"] > 0
    assert set(body["columns"]) >= {"trial", "accuracy", "latency_ms", "macs", "feasible", "front"}
    assert any(body["columns"]["front"]) and body["chosen"] in body["columns"]["trial"]
    one = c.get(f"/experiments/{running}/trials/{body['columns']['trial'][0]}", params={"device": DEVICE}).json()
    assert set(one["arch"]) == {"ks", "e", "d", "r"}


def test_run_subnets_and_device_fidelity(store):
    c = store["client"]
    sub = c.get("/runs/tiny/subnets").json()
    assert sub["n"] == 17 and sub["columns"]["split"].count("heldout") == 5
    assert sub["columns"]["accuracy"][0] == pytest.approx(0.5) and sub["columns"]["macs"][0] == 1e6
    assert c.get("/runs/nope/subnets").status_code == 404
    fid = c.get("/devices/laptop/fidelity").json()
    assert fid["spaces"]["tiny-mbv3"][0]["spearman"] == 0.97
    assert fid["spaces"]["tiny-mbv3"][0]["points"] == [[1.0, 1.1], [2.0, 1.9], [3.0, 3.2]]
    assert c.get(f"/devices/{DEVICE}/fidelity").json()["spaces"] == {}
    assert c.get("/devices/nope/fidelity").status_code == 404


def test_new_routes_need_the_token_and_are_in_openapi(store):
    server, exp_id = store["server"], store["exp"]
    for path in (f"/experiments/{exp_id}/trials?device={DEVICE}", "/runs/tiny/subnets", "/devices/laptop/fidelity",
                 "/exports/0123456789ab/card"):
        assert httpx.get(server.url + path).status_code == 401, path
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    for p in ("/experiments/{exp_id}/trials", "/experiments/{exp_id}/trials/{number}", "/runs/{run_id}/subnets",
              "/devices/{name}/fidelity", "/exports/{export_id}/card"):
        assert p in paths and set(paths[p]["get"]["responses"]) >= {"200", "404", "422"}, p
    assert not any(p.startswith("/ui") for p in paths)


def test_the_page_is_served_without_a_token_for_every_view(store):
    url = store["server"].url
    for path in ("/ui/", f"/ui/experiments/{store['exp']}", "/ui/runs/tiny", "/ui/devices/cpu-host",
                 "/ui/exports/abc", "/ui/launch"):
        r = httpx.get(url + path)
        assert r.status_code == 200 and "<main id=\"view\"" in r.text, path
    js = httpx.get(url + "/ui/static/app.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert httpx.get(url + "/ui/static/nope.js").status_code == 404
    assert httpx.get(url + "/ui/static/../app.py").status_code in (200, 404)  # the page, never a file outside
    assert "create_app" not in httpx.get(url + "/ui/static/..%2Fapp.py").text
    assert httpx.get(url + "/ui", follow_redirects=False).headers["location"] == "/ui/"


def test_card_needs_a_finished_export(store):
    c = store["client"]
    assert c.get("/exports/0123456789ab/card").status_code == 404


# ---------------------------------------------------------------------- in the browser
@pytest.fixture(scope="module")
def browser():
    pw = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with pw.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=exe, args=BROWSER_ARGS)
        except Exception as exc:  # a browser that cannot start on this machine
            pytest.skip(f"chromium ({exe}) cannot start: {str(exc).splitlines()[0]}")
        yield b
        b.close()


BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def page(browser, store):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(store["server"].url + "/ui/")
    pg.fill("#token", "secret")
    pg.click("form.login button[type=submit]")
    pg.wait_for_selector("h1:text('Experiments')")
    yield pg
    ctx.close()
    assert not errors, errors


def test_browser_login_keeps_the_token_for_the_session(browser, store):
    ctx = browser.new_context()
    pg = ctx.new_page()
    url = store["server"].url
    pg.goto(f"{url}/ui/experiments/{store['exp']}")
    pg.wait_for_selector("#token")
    pg.fill("#token", "wrong")
    pg.press("#token", "Enter")
    pg.wait_for_selector("text=refused the token")
    pg.fill("#token", "secret")
    pg.press("#token", "Enter")
    pg.wait_for_selector("canvas[data-points]")
    pg.reload()  # a deep link reloads into the same view, the token kept in sessionStorage
    pg.wait_for_selector("canvas[data-points]")
    assert pg.evaluate("sessionStorage.getItem('nas-token')") == "secret"
    ctx.close()


@pytest.mark.slow
def test_browser_list_shows_a_finished_and_a_running_experiment(page, store, running):
    page.wait_for_selector(f"tr[data-id='{running}'][data-status='running']")
    assert page.get_attribute(f"tr[data-id='{store['exp']}']", "data-status") == "succeeded"
    assert page.locator(f"tr[data-id='{running}'] progress").count() == 1
    page.click(f"tr[data-id='{running}'] button:text('Cancel')")
    page.wait_for_selector(f"tr[data-id='{running}'][data-status='cancelled']")  # polled, no reload
    page.wait_for_selector(f"tr[data-id='{running}'] button:text('Resume')")


def test_browser_pareto_chart_draws_every_trial(page, store):
    c, exp_id = store["client"], store["exp"]
    data = c.get(f"/experiments/{exp_id}/trials", params={"device": DEVICE}).json()
    page.click(f"a[href='/ui/experiments/{exp_id}']")
    canvas = page.wait_for_selector("canvas[data-points]")
    assert int(canvas.get_attribute("data-points")) == data["n"] == 60
    legend = page.inner_text(".legend")
    n_front, n_feasible = sum(data["columns"]["front"]), sum(data["columns"]["feasible"])
    assert f"Pareto front ({n_front})" in legend and f"feasible ({n_feasible - n_front})" in legend
    assert "chosen (1)" in legend and "latency_ms ≤ 8" in legend  # the constraint line on the latency axis
    # the table pages 50 rows at a time and sorts by a column
    assert page.locator("#trials tbody tr").count() == 50
    page.click("#trials th button:text('accuracy')")
    page.click("#trials th button:text('accuracy')")  # descending
    top = float(page.inner_text("#trials tbody tr:first-child td:nth-child(2)"))
    assert top == pytest.approx(max(data["columns"]["accuracy"]), abs=1e-3)
    page.select_option("#only", "front")
    assert page.locator("#trials tbody tr").count() == n_front
    # the keyboard reaches the front: focus the chart, step right, Enter shows the trial
    page.focus("canvas")
    page.keyboard.press("ArrowRight")
    assert page.is_visible(".tooltip") and "trial" in page.inner_text(".tooltip")
    page.keyboard.press("Enter")
    page.wait_for_selector(".detail h2:text('Trial')")


def test_browser_bad_constraint_shows_the_field_error(page, store):
    page.click("nav a:text('Launch')")
    page.wait_for_selector("form#launch")
    page.select_option("#f-dev-0", DEVICE)
    page.fill("#f-dev-0-latency_ms", "0.001")
    page.click("form#launch button[type=submit]")
    err = page.wait_for_selector("#f-dev-0-latency_ms-error:not(:empty)")
    assert "impossible" in err.inner_text()
    assert page.get_attribute("#f-dev-0-latency_ms", "aria-invalid") == "true"
    assert store["client"].get("/experiments").json()[-1]["name"] != "search"  # nothing was launched


@pytest.mark.slow
def test_browser_export_a_trial_then_its_card(page, store):
    exp_id = store["exp"]
    page.goto(f"{store['server'].url}/ui/experiments/{exp_id}")
    page.wait_for_selector("canvas[data-points]")
    page.click("#trials tbody tr:nth-child(3) button.linkish")
    page.check("input[name=format][value=safetensors]")
    page.click(".export-form button[type=submit]")
    page.wait_for_url("**/ui/exports/*")
    page.wait_for_selector("#card", timeout=300_000)
    card = page.inner_text("#card")
    assert "Model card" in card and DEVICE in card and "Latency" in card
    export_id = page.url.rsplit("/", 1)[1]
    got = store["client"].get(f"/exports/{export_id}").json()
    assert got["status"] == "succeeded" and got["experiment"] == exp_id
    trial = store["client"].get(f"/experiments/{exp_id}/trials/2", params={"device": DEVICE}).json()
    assert got["arch"] == trial["arch"]  # the third row of the table (trial 2) is what was exported
    body = store["client"].get(f"/exports/{export_id}/card").json()
    assert body["card"]["device"]["name"] == DEVICE and "command" not in body["card"]


def test_browser_server_down_and_unknown_ids(page, store):
    api_call = lambda url: url.endswith("/experiments") and "/ui/" not in url  # noqa: E731
    page.route(api_call, lambda route: route.abort())
    page.goto(store["server"].url + "/ui/experiments")
    page.wait_for_selector("#banner:has-text('not answering')")
    page.unroute(api_call)
    page.wait_for_selector("#banner", state="hidden")  # the next poll finds the server again
    page.goto(store["server"].url + "/ui/exports/0123456789ab")
    page.wait_for_selector("#banner:has-text('not found'), p.error:has-text('not found')")


def test_browser_failed_job_shows_its_error(page, store):
    """A failed export as the API reports it (the answer stood in for, to need no failing worker): the page shows
    the job's error."""
    state = {"id": "0123456789ab", "run": "tiny", "device": DEVICE, "arch": {}, "experiment": None, "files": [],
             "status": "failed", "progress": 0.3, "message": "exporting", "error": "Traceback ...\nOSError: disk full",
             "attempts": 1, "interruptions": 0, "created_at": "2026-01-01T00:00:00Z", "started_at": None,
             "finished_at": None, "download": None}
    page.route("**/exports/0123456789ab", lambda route: route.fulfill(json=state)
               if "/ui/" not in route.request.url else route.continue_())
    page.goto(store["server"].url + "/ui/exports/0123456789ab")
    box = page.wait_for_selector(".error-box")
    assert "The job failed" in box.inner_text() and "OSError: disk full" in box.inner_text()


def test_browser_device_predicted_against_measured(page, store):
    page.goto(store["server"].url + "/ui/devices/laptop")
    canvas = page.wait_for_selector("canvas[data-points]")
    assert canvas.get_attribute("data-points") == "3"
    assert "lookup-table (3)" in page.inner_text(".legend") and "0.970" in page.inner_text("table:has(caption)")
