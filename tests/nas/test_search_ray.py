"""The Ray Tune back end against a real Ray head on 127.0.0.1, reached by address as a cluster user would.

The head is started with token authentication on (`RAY_AUTH_MODE=token`, the token in `RAY_AUTH_TOKEN`), in a
`RAY_TMPDIR` of its own; teardown kills exactly the processes of that head (found by its temp dir), then
removes the dir.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import optuna
import pytest


ROOT = Path(__file__).resolve().parents[2]
RAY = ROOT / ".venv" / "bin" / "ray"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_processes_under(tmpdir: str) -> None:
    """SIGKILL the processes whose command line names `tmpdir` (the head's), and their descendants."""
    procs: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        procs[int(entry)] = (ppid, cmd)
    mine = {pid for pid, (_, cmd) in procs.items() if tmpdir in cmd and pid != os.getpid()}
    grew = True
    while grew:
        kids = {pid for pid, (ppid, _) in procs.items() if ppid in mine} - mine
        mine |= kids
        grew = bool(kids)
    for pid in mine:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def ray_head():
    if not RAY.exists():
        pytest.skip("ray is not installed in .venv")
    tmpdir = tempfile.mkdtemp(prefix="nas-ray-")
    port = _free_port()
    env = {**os.environ, "RAY_TMPDIR": tmpdir, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    try:
        subprocess.run([str(RAY), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                        "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
                        f"--temp-dir={tmpdir}"], env=env, check=True, capture_output=True, text=True)
        yield {"address": f"127.0.0.1:{port}", "env": env}
    finally:
        _kill_processes_under(tmpdir)
        shutil.rmtree(tmpdir, ignore_errors=True)


DRIVER = textwrap.dedent("""
    import json, sys
    import ray
    from nas.search import Constraint, get_strategy, run

    def objective(c):
        return (c["x"] - 3) ** 2 + 0.1 * c["y"], c["x"] * c["y"]

    address, db, budget, sampler = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    res = run({"x": list(range(7)), "y": [1, 2, 4]}, objective, directions=["minimize", "minimize"],
              budget=budget, seed=0, strategy=get_strategy("ray-tune", ray_address=address, max_concurrent=2,
                                                           sampler=sampler),
              constraints=[Constraint("cost", 12, fn=lambda c: c["x"] * c["y"])], storage=db, study_name="ray")
    assert not ray.is_initialized()  # the driver let go of the cluster it connected to
    print(json.dumps({"strategy": res.strategy, "resumed_from": res.resumed_from,
                      "trials": res.trials.to_dict("records"), "pareto": res.pareto.to_dict("records")}))
""")


def _drive(head: dict, db: Path, budget: int, sampler: str = "tpe") -> dict:
    env = {**head["env"], "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", DRIVER, head["address"], str(db), str(budget), sampler], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_ray_tune_runs_trials_on_a_cluster_by_address_and_resumes(ray_head, tmp_path):
    db = tmp_path / "s.db"
    res = _drive(ray_head, db, 8)
    trials = res["trials"]
    assert res["strategy"] == "ray-tune" and res["resumed_from"] == 0 and len(trials) == 8
    for row in trials:  # figures computed on the cluster's workers match the objective
        assert row["x"] in range(7) and row["y"] in (1, 2, 4)
        assert row["value_0"] == pytest.approx((row["x"] - 3) ** 2 + 0.1 * row["y"])
        assert row["value_1"] == row["cost"] == row["x"] * row["y"]
        assert row["feasible"] == (row["cost"] <= 12) and row["source"] == "measured"
    assert res["pareto"] and all(r["feasible"] for r in res["pareto"])
    study = optuna.load_study(study_name="ray", storage=f"sqlite:///{db}")
    assert len(study.trials) == 8

    more = _drive(ray_head, db, 11)
    assert more["resumed_from"] == 8 and len(more["trials"]) == 11
    assert more["trials"][:8] == trials


def test_our_surrogate_sampler_runs_inside_ray_tune(ray_head, tmp_path):
    res = _drive(ray_head, tmp_path / "s.db", 14, sampler="surrogate")  # 10 random, then the GP (2 at a time)
    trials = res["trials"]
    assert res["strategy"] == "ray-tune" and len(trials) == 14
    for row in trials:
        assert row["value_0"] == pytest.approx((row["x"] - 3) ** 2 + 0.1 * row["y"])
    assert res["pareto"] and all(r["feasible"] for r in res["pareto"])


def test_nas_search_with_ray_address_runs_the_predictors_on_the_cluster(ray_head, tmp_path):
    import yaml

    spec = {"name": "ray-exp", "space": "tiny-mbv3", "budget": 6, "seed": 0,
            "objectives": {"params": "maximize", "latency_ms": "minimize"},
            "devices": [{"name": "stm32f746", "constraints": {"latency_ms": 60}}]}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = {**ray_head["env"], "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "nas", "search", str(path), "--out", str(tmp_path / "out"),
                        "--ray-address", ray_head["address"], "--quiet"], env=env, capture_output=True, text=True,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads(r.stdout)["devices"]["stm32f746"]
    assert info["strategy"] == "ray-tune" and info["n_trials"] == 6
    assert (tmp_path / "out" / "stm32f746" / "pareto.png").exists()
