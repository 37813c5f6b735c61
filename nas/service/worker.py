"""A worker process: `python -m nas.service.worker JOB_ID` runs one job recorded in the store and records its outcome.

Started by `nas.service.jobs.JobRunner` with the store's URL and folders in its environment (`NAS_DB_URL`,
`NAS_RUNS_DIR`). It dies with the server that started it (a server killed with SIGKILL leaves no orphan to race
the next one), stops between trials when its job is cancelled, and on SIGTERM stops the same way and leaves the
job `interrupted` so the next server resumes it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from nas.service.settings import Settings
from nas.service.store import Experiment, Export, Job, Store, utcnow

log = logging.getLogger("nas.service.worker")


class JobContext:
    """What a job handler may do besides its work: report progress, and ask whether it should stop."""

    def __init__(self, store: Store, job_id: str, check_every_s: float = 0.2) -> None:
        self.store, self.job_id, self.check_every_s = store, job_id, check_every_s
        self.terminated = False  # SIGTERM: the server is shutting down
        self.cancelled = False
        self._checked = 0.0

    def should_stop(self) -> bool:
        """True once the job is cancelled (checked in the store at most every `check_every_s`) or SIGTERM came."""
        if self.terminated or self.cancelled:
            return True
        now = time.monotonic()
        if now - self._checked >= self.check_every_s:
            self._checked = now
            job = self.store.job(self.job_id)
            self.cancelled = bool(job is None or job.cancel_requested)
        return self.terminated or self.cancelled

    def report(self, progress: float | None = None, message: str | None = None) -> None:
        values: dict[str, Any] = {}
        if progress is not None:
            values["progress"] = float(min(1.0, max(0.0, progress)))
        if message is not None:
            values["message"] = message
        if values:
            self.store.update_job(self.job_id, **values)


def _die_with_parent() -> None:
    """Ask the kernel to kill this process when the server that started it dies; poll as a fallback."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(3)
            time.sleep(0.5)

    if os.getppid() != parent or parent == 1:
        os._exit(3)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


# ---------------------------------------------------------------------- handlers
def _to_jsonable(obj: Any) -> Any:
    """Plain JSON types from what searches return (numpy scalars, DataFrames, paths)."""
    import numpy as np
    import pandas as pd

    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, pd.DataFrame):
        return None  # tables stay in the experiment's folder; the API reads them from there
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return _to_jsonable(obj.to_dict())
    if isinstance(obj, float) and obj != obj:
        return None
    return obj if isinstance(obj, (str, int, float, bool)) or obj is None else str(obj)


def run_search(store: Store, settings: Settings, job: Job, ctx: JobContext) -> bool:
    """Run (or resume) an experiment: same out_dir, same Optuna study names, so finished trials are kept."""
    from nas.experiment import ExperimentSpec, run_experiment
    from nas.search.output import SearchOutput

    with store.session() as s:
        exp = s.get(Experiment, job.target_id)
        spec_data, out_dir, exp_id, study = dict(exp.spec), Path(exp.out_dir), exp.id, exp.study_name
    spec = ExperimentSpec.model_validate(spec_data)
    done: dict[str, int] = {}
    last = [0.0]

    def progress(device: str, n_done: int, budget: int, best: dict | None) -> None:
        done[device] = int(n_done)
        now = time.monotonic()
        if now - last[0] < 0.25 and n_done < budget:
            return  # a fast search reports many times a second; the store needs a few
        last[0] = now
        with store.session() as s:
            e = s.get(Experiment, exp_id)
            e.trials_done = sum(done.values())
            if best:
                e.best = {**(e.best or {}), device: {**(e.best or {}).get(device, {}), "values": _to_jsonable(best)}}
            j = s.get(Job, job.id)
            j.progress = min(1.0, e.trials_done / e.budget) if e.budget else 0.0
            j.message = f"{e.trials_done} of {e.budget} trials ({device})"

    out_dir.mkdir(parents=True, exist_ok=True)
    # the studies are named per experiment (not by the spec's name) so two experiments never share trials; the
    # spec is checked as at its creation (a client's spec; the Ray cluster, if any, is the server's)
    summary = run_experiment(spec, out_dir, storage=settings.database_url, progress=progress,
                             should_stop=ctx.should_stop, study_name=study, from_client=True,
                             ray_address=settings.ray_address if spec.strategy == "ray-tune" else None)
    devices = summary.get("devices", {})
    best: dict[str, Any] = {}
    output = SearchOutput(out_dir)
    for device, info in devices.items():
        entry: dict[str, Any] = {"values": _to_jsonable(info.get("best"))}
        if info.get("arch"):
            found = output.best(device)
            entry["arch"], entry["predicted"] = found.arch, found.predicted
        best[device] = entry
    with store.session() as s:
        e = s.get(Experiment, exp_id)
        e.result = _to_jsonable(summary)
        e.best = {**(e.best or {}), **best}
        e.trials_done = max(e.trials_done, sum(int(i.get("n_trials", 0)) for i in devices.values()))
    return bool(summary.get("stopped"))


def run_export(store: Store, settings: Settings, job: Job, ctx: JobContext) -> bool:
    """Write an export bundle under the store's exports folder and record its files."""
    from nas.service.resolve import resolve_run_dir
    from nas.export import export_bundle
    from supernet import ArchConfig

    with store.session() as s:
        ex = s.get(Export, job.target_id)
        run_id, device, arch, options, ex_id = ex.run_id, ex.device, dict(ex.arch), dict(ex.options or {}), ex.id
    run_dir = resolve_run_dir(store, settings, run_id)
    out_dir = settings.exports_dir / ex_id
    out_dir.mkdir(parents=True, exist_ok=True)

    def progress(*args: Any, **kwargs: Any) -> None:
        frac = next((a for a in args if isinstance(a, float)), kwargs.get("fraction"))
        msg = next((a for a in args if isinstance(a, str)), kwargs.get("message"))
        ctx.report(frac, msg)

    bundle = Path(export_bundle(run_dir, ArchConfig.from_dict(arch), device, out_dir,
                                formats=options.get("formats"), finetune=options.get("finetune", 0),
                                progress=progress)).resolve()
    files = sorted(str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file())
    with store.session() as s:
        ex = s.get(Export, ex_id)
        ex.bundle_dir, ex.files = str(bundle), files
    return False  # an export runs to its end (a cancel that cannot wait terminates it)


# each handler returns True when it stopped early (cancelled or told to stop), False when it ran to its end
HANDLERS: dict[str, Callable[[Store, Settings, Job, JobContext], bool]] = {"search": run_search, "export": run_export}


def run_job(job_id: str, settings: Settings | None = None) -> str:
    """Run job `job_id` to the end and record its outcome; returns the final status."""
    settings = settings or Settings.from_env()
    store = Store(settings.database_url)
    job = store.job(job_id)
    if job is None:
        print(f"error: no job {job_id} in {settings.database_url}", file=sys.stderr)
        return "missing"
    ctx = JobContext(store, job_id)
    if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
        _watch_sigterm(ctx, settings)
    store.update_job(job_id, status="running", pid=os.getpid(), message=f"running {job.kind}")
    error, stopped = None, True
    try:
        stopped = HANDLERS[job.kind](store, settings, job, ctx)
    except Exception as exc:  # recorded for the user; the traceback goes to the job's log
        traceback.print_exc()
        error = f"{type(exc).__name__}: {exc}"
    with _OUTCOME:  # one outcome recorded, by this thread or by a SIGTERM that could not wait
        status = _record_outcome(store, job_id, ctx, error, stopped)
        _RECORDED.set()
    store.close()
    return status


_OUTCOME, _RECORDED = threading.Lock(), threading.Event()
STOP_GRACE_S = 5.0  # how long a SIGTERM waits for the job to reach a point where it can stop


def _watch_sigterm(ctx: JobContext, settings: Settings) -> None:
    """On SIGTERM, ask the job to stop at its next check; if it is stuck where it cannot check, record the outcome
    and exit after STOP_GRACE_S all the same.

    A thread woken through the signal's wakeup fd does this, not the Python handler: a handler runs only when the
    main thread next runs Python code (never, while it waits inside `ray.init` on an address that does not
    answer), and a library may replace it (`ray.init` installs its own)."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.signal(signal.SIGTERM, lambda *_: setattr(ctx, "terminated", True))
    signal.set_wakeup_fd(write_fd)  # the interpreter writes each signal's number here as it arrives

    def watch() -> None:
        while signal.SIGTERM not in os.read(read_fd, 64):
            pass
        ctx.terminated = True
        time.sleep(STOP_GRACE_S)
        force()

    def force() -> None:
        try:
            with _OUTCOME:
                if not _RECORDED.is_set():
                    log.warning("job %s did not stop within %.0f s of SIGTERM; exiting", ctx.job_id, STOP_GRACE_S)
                    store = Store(settings.database_url)
                    _record_outcome(store, ctx.job_id, ctx, None, True)
                    store.close()
        finally:
            os._exit(0)

    threading.Thread(target=watch, name="sigterm-watch", daemon=True).start()


def _record_outcome(store: Store, job_id: str, ctx: JobContext, error: str | None, stopped: bool) -> str:
    latest = store.job(job_id)
    ctx.cancelled = ctx.cancelled or bool(latest is not None and latest.cancel_requested)
    if error is None and not stopped:
        status, message = "succeeded", "done"  # it finished before a late cancel or stop could land
    elif error is not None and not ctx.terminated and not ctx.cancelled:
        status, message = "failed", "failed"
    elif ctx.cancelled:
        status, message = "cancelled", "cancelled"
    elif ctx.terminated:
        status, message = "interrupted", "interrupted: the server stopped while it ran"
    else:
        status, message = "succeeded", "done"
    values: dict[str, Any] = {"status": status, "message": message, "error": error, "pid": None}
    if status == "succeeded":
        values["progress"] = 1.0
    if status != "interrupted":
        values["finished_at"] = utcnow()
    with store.session() as s:
        j = s.get(Job, job_id)
        if status == "interrupted":
            values["interruptions"] = j.interruptions + 1
        for k, v in values.items():
            setattr(j, k, v)
    return status


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m nas.service.worker JOB_ID", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    _die_with_parent()
    status = run_job(argv[0])
    return 0 if status in ("succeeded", "cancelled", "interrupted") else 1


if __name__ == "__main__":
    sys.exit(main())
