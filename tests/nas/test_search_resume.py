"""A search killed with SIGKILL and started again with the same study name goes on: no finished trial lost,
the trial that was running when it died marked FAIL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    from nas.search import run
    from supernet import SearchSpace
    from supernet.counting import count_macs

    kind, db, budget, hang_at, marker = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    if kind == "measured":  # a slow per-candidate objective, TPE; call `hang_at` says so and never returns
        calls = [0]
        def objective(c):
            calls[0] += 1
            if calls[0] == hang_at:
                open(marker, "w").close()
                time.sleep(3600)
            time.sleep(0.05)
            return (c["x"] - 3) ** 2 + c["y"]
        res = run({"x": list(range(8)), "y": [0.0, 0.5, 1.0]}, objective, directions="minimize", budget=budget,
                  seed=0, strategy="optuna-tpe", storage=db, study_name="resume")
    else:  # a batch objective on the arch space, evolution, small batches
        space = SearchSpace.preset("tiny-mbv3")
        class Obj:
            def evaluate_batch(self, codes):
                time.sleep(0.05)
                return -count_macs(space, codes)
        res = run(space, Obj(), directions="maximize", budget=budget, seed=0, strategy="evolution",
                  constraints={"macs": 9e6}, storage=db, study_name="resume")
    print(len(res.trials), res.resumed_from)
""")


def _start(kind: str, db: Path, budget: int, hang_at: int = 0, marker: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = [kind, str(db), str(budget), str(hang_at), str(marker or "")]
    return subprocess.Popen([sys.executable, "-c", SCRIPT, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _complete(db: Path) -> int:
    """Finished trials so far, by a light read that does not hold up the writer."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
            return conn.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def _trials(db: Path) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name="resume", storage=f"sqlite:///{db}").get_trials(deepcopy=False)
    except KeyError:  # not created yet
        return []


@pytest.mark.parametrize("kind, budget, kill_after", [("measured", 400, 6), ("batched", 3000, 150)])
def test_sigkill_then_resume_keeps_every_finished_trial(tmp_path, kind, budget, kill_after):
    db = tmp_path / "search.db"
    marker = tmp_path / "hanging"
    if kind == "measured":  # killed for sure while an objective runs: trial kill_after + 1 hangs
        proc = _start(kind, db, budget, hang_at=kill_after + 1, marker=marker)
    else:
        proc = _start(kind, db, budget)
    while _complete(db) < kill_after or (kind == "measured" and not marker.exists()):
        assert proc.poll() is None, f"search ended before it could be killed: {proc.stderr.read()[-2000:]}"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    before = {t.number: t for t in _trials(db) if t.state == TrialState.COMPLETE}
    running = [t.number for t in _trials(db) if t.state == TrialState.RUNNING]
    assert len(before) >= kill_after
    if kind == "measured":
        assert running, "a per-candidate trial is RUNNING in storage while its objective runs"

    small = len(before) + 20  # resume and finish quickly
    proc = _start(kind, db, small)
    out, err = proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    n, resumed_from = map(int, out.split())
    assert resumed_from == len(before) and n == small
    after = _trials(db)
    complete = {t.number: t for t in after if t.state == TrialState.COMPLETE}
    assert len(complete) == small
    for number, t in before.items():  # kept, unchanged
        assert complete[number].params == t.params and complete[number].values == t.values
    assert not [t for t in after if t.state == TrialState.RUNNING]
    for number in running:
        assert next(t for t in after if t.number == number).state == TrialState.FAIL
