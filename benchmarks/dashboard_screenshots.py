"""Screenshots of the dashboard's main views for the README, from a real store built here in a few minutes: the tiny
recipe trained (digits), its accuracy predictor fitted on measured subnets, this machine's CPU profiled, a search
over two devices, a second search left running, and an export of the chosen subnet.

    python benchmarks/dashboard_screenshots.py [--out docs/dashboard] [--work DIR]

Debian's chromium drives the pages (through Playwright); `nas serve` runs on loopback with a token.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._dashboard import (BROWSER_ARGS, chromium, signed_in_context, start_server, stop_server,  # noqa: E402
                                   wait_job)

TOKEN = "screenshots"


def nas(*args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    print("$ nas", " ".join(args), file=sys.stderr)
    subprocess.run([sys.executable, "-m", "nas", *args], check=True, env=env, cwd=ROOT)


def build_store(runs: Path) -> None:
    if not (runs / "tiny" / "run.json").is_file():
        nas("train", "experiments/tiny.yaml", "--out", str(runs / "tiny"))
        nas("accuracy", "fit", str(runs / "tiny"), "--samples", "40", "--bn-images", "200", "--val-images", "300")
    if not (runs / "profiles" / "cpu-host.yaml").is_file():
        os.environ["NAS_PROFILES_DIR"] = str(runs / "profiles")
        nas("profile", "cpu-host", "--space", "tiny-mbv3", "--n-fit", "10", "--n-test", "24", "--repeats", "3",
            "--rounds", "1", "--out", str(runs / "profiles" / "cpu-host.yaml"))


SEARCH = {"name": "tiny-two-devices", "run": "tiny", "strategy": "evolution", "strategy_options": {"population": 50},
          "budget": 400, "seed": 0, "objectives": {"accuracy": "maximize", "latency_ms": "minimize"},
          "devices": [{"name": "cpu-host", "constraints": {"latency_ms": 1.6, "macs": 12_000_000}},
                      {"name": "stm32f746", "constraints": {"latency_ms": 60, "sram_bytes": 320_000,
                                                            "flash_bytes": 1_000_000}}]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "dashboard"))
    ap.add_argument("--work", default=None, help="a folder to build the store in (kept; reused when run again)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = Path(args.work or tempfile.mkdtemp(prefix="nas-screens-")) / "runs"
    build_store(runs)
    proc, url = start_server(runs, token=TOKEN)
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as c, \
                sync_playwright() as p:
            search = with_cpu_budget(c, SEARCH)
            r = c.post("/experiments", json=search)
            assert r.status_code == 202, r.text
            exp_id = r.json()["id"]
            state = wait_job(c, f"/experiments/{exp_id}")
            assert state["status"] == "succeeded", state
            ex_id = c.post("/exports", json={"experiment": exp_id, "device": "cpu-host",
                                             "formats": ["safetensors", "onnx"]}).json()["id"]
            assert wait_job(c, f"/exports/{ex_id}")["status"] == "succeeded"
            live = c.post("/experiments", json={**search, "name": "long-search", "budget": 50_000}).json()["id"]
            browser = p.chromium.launch(executable_path=chromium(), args=BROWSER_ARGS)
            page = signed_in_context(browser, TOKEN, viewport={"width": 1440, "height": 900}).new_page()

            def shot(name: str, full: bool = False) -> None:
                page.wait_for_timeout(300)
                page.screenshot(path=str(out / f"{name}.png"), full_page=full)
                print("wrote", out / f"{name}.png", file=sys.stderr)

            wait_job_running(c, live)
            page.goto(f"{url}/ui/experiments")
            page.wait_for_selector(f"tr[data-id='{live}'][data-status='running']")
            shot("experiments")
            c.post(f"/experiments/{live}/cancel")

            page.goto(f"{url}/ui/experiments/{exp_id}")
            page.wait_for_selector("canvas[data-points]")
            page.focus("canvas")
            for _ in range(3):
                page.keyboard.press("ArrowRight")
            page.keyboard.press("Enter")
            page.wait_for_selector(".export-form")
            page.keyboard.press("ArrowRight")  # a tooltip on the next front point
            shot("experiment")

            page.goto(f"{url}/ui/launch")
            page.wait_for_selector("form#launch")
            page.select_option("#f-dev-0", "stm32f746")
            page.fill("#f-dev-0-sram_bytes", "20")
            page.click("form#launch button[type=submit]")
            page.wait_for_selector("#f-dev-0-sram_bytes-error:not(:empty)")
            shot("launch")

            page.goto(f"{url}/ui/runs/tiny")
            page.wait_for_selector("canvas[data-points]")
            shot("run")
            page.goto(f"{url}/ui/devices/cpu-host")
            page.wait_for_selector("h2:text('Latency predictors')")
            shot("device", full=True)
            page.goto(f"{url}/ui/exports/{ex_id}")
            page.wait_for_selector("#card")
            shot("export", full=True)
            browser.close()
    finally:
        stop_server(proc)


def with_cpu_budget(c: httpx.Client, search: dict) -> dict:
    """The search with a cpu-host latency bound halfway between its smallest and largest subnet, as measured here
    (a fixed bound may be impossible on a slow or busy machine)."""
    from supernet import SearchSpace

    space = SearchSpace.preset("tiny-mbv3")
    archs = [space.smallest(min(space.resolutions)).to_dict(), space.largest().to_dict()]
    rows = c.post("/predict", json={"space": "tiny-mbv3", "devices": ["cpu-host"], "archs": archs}).json()
    low, high = sorted(row["latency_ms"] for row in rows["predictions"])
    devices = [dict(d) for d in search["devices"]]
    devices[0] = {**devices[0], "constraints": {**devices[0]["constraints"], "latency_ms": round((low + high) / 2, 2)}}
    return {**search, "devices": devices}


def wait_job_running(c: httpx.Client, exp_id: str) -> None:
    import time

    for _ in range(1200):
        if c.get(f"/experiments/{exp_id}").json()["trials_done"] > 0:
            return
        time.sleep(0.25)
    raise RuntimeError("the long search did not start")


if __name__ == "__main__":
    main()
