"""What the dashboard's benchmark and screenshot scripts share: a `nas serve` on loopback, Debian's chromium driven by
Playwright (never a downloaded browser), and a finished experiment of any size put in a store without hours of
searching (a random search on the predictors, in memory, written out by the experiment module itself)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from benchmarks._serve import free_port, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


def start_server(runs: Path, token: str | None = None, workers: int = 2) -> tuple[subprocess.Popen, str]:
    """`nas serve` over `runs` (device profiles under runs/profiles); (process, base URL) once /healthz answers."""
    port = free_port()
    runs.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NAS_")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", NAS_PROFILES_DIR=str(runs / "profiles"))
    if token:
        env["NAS_API_TOKEN"] = token  # not --token: the command line is visible to every user of the machine
    cmd = [sys.executable, "-m", "nas", "serve", "--port", str(port), "--runs-dir", str(runs), "--workers",
           str(workers), "--log-level", "warning"]
    log = open(runs.parent / "serve.log", "ab")
    proc = subprocess.Popen(cmd, env=env, cwd=runs.parent, stdout=log, stderr=subprocess.STDOUT)
    return wait_healthy(proc, f"http://127.0.0.1:{port}", tries=1200, hint=str(runs.parent / "serve.log"))


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise SystemExit("Debian's chromium is not installed: apt-get install chromium")
    return exe


def signed_in_context(browser: Any, token: str | None, **kwargs: Any) -> Any:
    """A browser context whose pages start with the token in sessionStorage, as after signing in."""
    ctx = browser.new_context(**kwargs)
    if token:
        ctx.add_init_script(f"sessionStorage.setItem('nas-token', {token!r});")
    return ctx


def wait_job(client: httpx.Client, path: str, limit_s: float = 1800) -> dict:
    end = time.monotonic() + limit_s
    while True:
        state = client.get(path).json()
        if state["status"] in ("succeeded", "failed", "cancelled", "interrupted"):
            return state
        if time.monotonic() > end:
            raise RuntimeError(f"{path} did not finish: {state}")
        time.sleep(0.3)


def seed_experiment(runs: Path, n_trials: int, *, device: str = "cpu-host", space: str = "tiny-mbv3",
                    seed: int = 0) -> str:
    """Record a finished experiment of `n_trials` trials on `device` in the store under `runs` (the server must not
    be running yet): a random search on the predictors in memory, its device folder written by
    nas.experiment as a real experiment's is. Returns the experiment id."""
    from nas.experiment import ExperimentSpec, PredictorObjective, _write_device
    from nas.search import Constraint, get_strategy, run
    from nas.service.store import Experiment, Store, new_id
    from predictors import Predictors
    from supernet import SearchSpace

    exp_id = new_id()
    out = runs / "experiments" / exp_id
    constraints = {"latency_ms": 2.0, "flash_bytes": 2_500_000}
    spec = ExperimentSpec.model_validate({
        "name": f"random-{n_trials}", "space": space, "devices": [{"name": device, "constraints": constraints}],
        "objectives": {"params": "maximize", "latency_ms": "minimize"}, "strategy": "random", "budget": n_trials,
        "seed": seed})
    preds = Predictors(SearchSpace.preset(space), device)
    res = run(preds.space, PredictorObjective(preds, list(spec.objectives)), directions=dict(spec.objectives),
              budget=n_trials, seed=seed, strategy=get_strategy("random"),
              constraints=[Constraint(k, v) for k, v in constraints.items()])
    info = _write_device(out / device, spec.devices[0], spec, preds, res)
    best = {"values": res.best_values, "arch": res.best.to_dict() if res.best is not None else None}
    store = Store(f"sqlite:///{(runs / 'nas.db').resolve()}").create()
    now = datetime.now(timezone.utc)
    with store.session() as s:
        job = store.add_job(s, "search", exp_id)
        job.status, job.progress, job.message = "succeeded", 1.0, "done"
        job.started_at = job.finished_at = now
        s.add(Experiment(id=exp_id, name=spec.name, spec=spec.model_dump(mode="json"), out_dir=str(out),
                         study_name=f"{spec.name}-{exp_id}", job_id=job.id, budget=n_trials, trials_done=n_trials,
                         best={device: best}, result={"name": spec.name, "stopped": False, "devices": {device: info}}))
    store.close()
    return exp_id


__all__ = ["start_server", "stop_server", "chromium", "signed_in_context", "wait_job", "seed_experiment",
           "BROWSER_ARGS", "ROOT"]
