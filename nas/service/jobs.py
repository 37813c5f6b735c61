"""The job runner: jobs recorded in the store are started as worker processes
(`python -m nas.service.worker JOB_ID`).

A job is written to the store (status `queued`) before anything runs it, so a server killed at any moment loses
nothing: on start, jobs a dead server left `running` are marked `interrupted` (their worker, if still alive, is
killed) and, unless `resume_on_start` is off, queued again; a search re-run with the same Optuna study name keeps
the trials it had finished. At most `settings.workers` jobs run at once; the rest wait queued, oldest first.
Cancelling a running job asks its worker to stop (it polls the store between trials); one that does not stop
within `cancel_grace_s` is terminated.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import select, update

from nas.service.settings import Settings
from nas.service.store import ACTIVE_STATES, Job, Store, utcnow

log = logging.getLogger("nas.service.jobs")


class JobStateError(ValueError):
    """A job cannot do what was asked in its present state (e.g. resume a job that succeeded)."""


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment a worker process gets: the same store and folders as the server."""
    env = dict(os.environ)
    env["NAS_DB_URL"] = settings.database_url
    env["NAS_RUNS_DIR"] = str(settings.runs_dir.resolve())
    env["NAS_PROFILES_DIR"] = str(settings.profiles_dir)  # uploaded devices are found by name in searches
    if settings.ray_address:
        env["NAS_RAY_ADDRESS"] = settings.ray_address
    for secret in ("NAS_API_TOKEN", "NAS_API_TOKEN_FILE"):  # a worker never serves requests
        env.pop(secret, None)
    env.setdefault("OMP_NUM_THREADS", "1")  # several workers share the machine's cores
    return env


def _is_worker_of(pid: int, job_id: str) -> bool:
    """True if `pid` is alive and is the worker process of `job_id` (not a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"nas.service.worker" in cmdline and job_id.encode() in cmdline


def cancel_job(store: Store, job_id: str) -> Job:
    """Cancel a queued or interrupted job at once; ask a running one to stop. Finished jobs are left as they are."""
    with store.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise KeyError(job_id)
        if job.status in ("queued", "interrupted"):
            job.status, job.message, job.finished_at = "cancelled", "cancelled before it ran", utcnow()
        elif job.status == "running":
            job.cancel_requested, job.message = True, "cancel requested"
        return job


def resume_job(store: Store, job_id: str) -> Job:
    """Queue an interrupted, failed or cancelled job again (a search continues its Optuna study)."""
    with store.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise KeyError(job_id)
        if job.status not in ("interrupted", "failed", "cancelled"):
            raise JobStateError(f"job {job_id} is {job.status}; only interrupted, failed or cancelled jobs resume")
        job.status, job.cancel_requested, job.error = "queued", False, None
        job.message, job.finished_at = "queued to resume", None
        return job


class JobRunner:
    """Starts queued jobs as worker processes, watches them, and recovers what a killed server left behind."""

    def __init__(self, store: Store, settings: Settings, *, cancel_grace_s: float = 10.0) -> None:
        self.store = store
        self.settings = settings
        self.cancel_grace_s = cancel_grace_s
        self.host = socket.gethostname()
        self._procs: dict[str, subprocess.Popen] = {}
        self._cancel_seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="nas-job-runner", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop starting jobs; ask running workers to stop and mark their jobs interrupted (resumed on next start)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            procs = dict(self._procs)
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for job_id, proc in procs.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self._settle(job_id, proc.returncode, default="interrupted")
        with self._lock:
            self._procs.clear()

    def wake(self) -> None:
        """Look at the queue now rather than at the next poll (called after a job is added or cancelled)."""
        self._wake.set()

    @property
    def running(self) -> list[str]:
        with self._lock:
            return list(self._procs)

    # ------------------------------------------------------------------ recovery
    def recover(self) -> list[str]:
        """Mark jobs left `running` by a dead server `interrupted`; re-queue interrupted jobs if so configured."""
        recovered = []
        with self.store.session() as s:
            for job in s.scalars(select(Job).where(Job.status.in_(("running", "interrupted")))):
                if job.host not in (None, self.host):
                    continue  # another machine's server owns it
                if job.status == "running":
                    if job.pid and _is_worker_of(job.pid, job.id):
                        try:
                            os.kill(job.pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    job.status, job.pid = "interrupted", None
                    job.interruptions += 1
                    job.message = "interrupted: the server stopped while it ran"
                    recovered.append(job.id)
                if job.cancel_requested:
                    job.status, job.message, job.finished_at = "cancelled", "cancelled", utcnow()
                elif self.settings.resume_on_start:
                    job.status, job.message = "queued", "queued to resume after a server restart"
        if recovered:
            log.warning("%d job(s) left running by a previous server were interrupted: %s", len(recovered), recovered)
        return recovered

    # ------------------------------------------------------------------ the loop
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the runner must outlive a database hiccup
                log.exception("job runner tick failed")
            self._wake.wait(self.settings.poll_interval_s)
            self._wake.clear()

    def tick(self) -> None:
        """One pass: reap finished workers, enforce cancels, start queued jobs up to the limit."""
        with self._lock:
            procs = dict(self._procs)
        for job_id, proc in procs.items():
            if proc.poll() is not None:
                with self._lock:
                    self._procs.pop(job_id, None)
                self._cancel_seen.pop(job_id, None)
                self._settle(job_id, proc.returncode, default="failed")
        if procs:
            self._enforce_cancels(procs)
        free = self.settings.workers - len(self.running)
        if free <= 0 or self._stop.is_set():
            return
        with self.store.session() as s:
            queued = list(s.scalars(select(Job.id).where(Job.status == "queued").order_by(Job.created_at).limit(free)))
        for job_id in queued:
            self._launch(job_id)

    def _enforce_cancels(self, procs: dict[str, subprocess.Popen]) -> None:
        with self.store.session() as s:
            asked = set(s.scalars(select(Job.id).where(Job.id.in_(list(procs)), Job.cancel_requested.is_(True))))
        now = time.monotonic()
        for job_id in asked:
            first = self._cancel_seen.setdefault(job_id, now)
            proc = procs[job_id]
            if now - first > self.cancel_grace_s and proc.poll() is None:
                log.warning("job %s ignored its cancel for %.0f s; terminating it", job_id, self.cancel_grace_s)
                proc.terminate()

    def _launch(self, job_id: str) -> None:
        # Claim with a conditional update so two servers on one database never start the same job.
        with self.store.session() as s:
            claimed = s.execute(
                update(Job).where(Job.id == job_id, Job.status == "queued")
                .values(status="running", host=self.host, attempts=Job.attempts + 1, started_at=utcnow(),
                        message="starting", cancel_requested=False)
            ).rowcount
        if not claimed:
            return
        logs = self.settings.runs_dir.resolve() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        try:
            with open(logs / f"job-{job_id}.log", "ab") as out:
                proc = subprocess.Popen([sys.executable, "-m", "nas.service.worker", job_id],
                                        env=worker_env(self.settings), stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        except OSError as exc:
            self.store.update_job(job_id, status="failed", error=f"cannot start a worker: {exc}", message="failed",
                                  finished_at=utcnow())
            return
        with self._lock:
            self._procs[job_id] = proc
        self.store.update_job(job_id, pid=proc.pid)
        log.info("job %s started as pid %d", job_id, proc.pid)

    def _settle(self, job_id: str, returncode: int | None, default: str) -> None:
        """After a worker exits: if it did not record an outcome itself, record one."""
        with self.store.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.status not in ACTIVE_STATES:
                return
            if job.cancel_requested:
                job.status, job.message = "cancelled", "cancelled"
            elif default == "interrupted":
                job.status, job.message = "interrupted", "interrupted: the server stopped while it ran"
                job.interruptions += 1
            else:
                job.status = "failed"
                job.error = job.error or f"worker exited with code {returncode} without reporting an outcome"
                job.message = "failed"
            job.pid = None
            if job.status != "interrupted":
                job.finished_at = utcnow()


__all__ = ["JobRunner", "JobStateError", "cancel_job", "resume_job", "worker_env"]
