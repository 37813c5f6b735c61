"""The job runner's recovery after a server died, in-process (no server): jobs left running are interrupted (and
re-queued unless told not to), a worker still alive is killed, other machines' jobs are left alone."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from nas.service.jobs import JobRunner
from nas.service.settings import Settings
from nas.service.store import Store


def _running(store: Store, host: str | None = None, pid: int | None = None, cancel: bool = False) -> str:
    with store.session() as s:
        job = store.add_job(s, "search", "x")
        job_id = job.id
    store.update_job(job_id, status="running", host=host or socket.gethostname(), pid=pid, cancel_requested=cancel)
    return job_id


@pytest.mark.parametrize("resume", [True, False])
def test_recover_interrupts_and_requeues(db_url, tmp_path, resume):
    store = Store(db_url).create()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mine = _running(store, pid=dead.pid)
    other = _running(store, host="another-machine")
    cancelled = _running(store, cancel=True)
    runner = JobRunner(store, Settings(runs_dir=tmp_path / "runs", db_url=db_url, resume_on_start=resume))
    assert set(runner.recover()) == {mine, cancelled}
    job = store.job(mine)
    assert job.status == ("queued" if resume else "interrupted") and job.interruptions == 1 and job.pid is None
    assert store.job(other).status == "running"
    assert store.job(cancelled).status == "cancelled"
    assert runner.recover() == []  # nothing left running: a second start changes nothing
    store.close()


def test_recover_kills_a_worker_that_outlived_its_server(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'nas.db'}"
    store = Store(db_url).create()
    with store.session() as s:
        job_id = store.add_job(s, "search", "x").id
    # looks like `python -m nas.service.worker JOB_ID` to /proc, sleeps instead of working
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "nas.service.worker", job_id])
    store.update_job(job_id, status="running", host=socket.gethostname(), pid=orphan.pid)
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    other_id = _running(store, pid=unrelated.pid)  # a recycled pid: not a worker of that job, left alone
    try:
        JobRunner(store, Settings(runs_dir=tmp_path / "runs", db_url=db_url, resume_on_start=False)).recover()
        assert orphan.wait(30) == -9
        assert unrelated.poll() is None
        assert store.job(job_id).status == "interrupted" and store.job(other_id).status == "interrupted"
    finally:
        for p in (orphan, unrelated):
            if p.poll() is None:
                p.kill()
                p.wait()
    store.close()
