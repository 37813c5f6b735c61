"""Search experiments: POST /experiments (a spec as `nas search` reads it; 202 + id), GET /experiments,
GET /experiments/{id} (status, progress, trials done, best so far per device), GET /experiments/{id}/pareto,
POST /experiments/{id}/cancel, POST /experiments/{id}/resume.

The experiment and its job are recorded in the store before the job runner may start it; a worker process runs
the search. Names in a spec are checked against what the server knows (spaces, devices, runs) and output
locations are the server's own, so no path a client sends reaches the file system.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from fastapi import APIRouter, Depends, Query, Request, Response

from nas.api.deps import get_runner, get_settings, get_store
from nas.api.errors import Conflict, FieldError
from nas.api.openapi import error_responses
from nas.api.queue import get_with_job, list_with_jobs, queue_job
from nas.api.schemas import Accepted, ExperimentOut, ParetoOut
from nas.api.spec import device_constraints, prepare_spec, spec_budget, spec_devices
from nas.service.jobs import JobRunner, JobStateError, cancel_job, resume_job
from nas.service.settings import Settings
from nas.service.store import Experiment, Job, Store, new_id
from supernet._io import load_yaml

router = APIRouter(prefix="/experiments", tags=["experiments"])
_SPEC_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "description": "an experiment spec, as `nas search` reads it"}},
    "application/yaml": {"schema": {"type": "string"}}}}}


def experiment_out(exp: Experiment, job: Job, *, detail: bool = False) -> ExperimentOut:
    return ExperimentOut(
        id=exp.id, name=exp.name, devices=spec_devices(exp.spec), budget=exp.budget, trials_done=exp.trials_done,
        best=exp.best or {}, status=job.status, progress=job.progress, message=job.message, error=job.error,
        attempts=job.attempts, interruptions=job.interruptions, created_at=job.created_at, started_at=job.started_at,
        finished_at=job.finished_at, result=_public_result(exp) if detail else None,
        spec={**exp.spec, "run": exp.run_id} if detail and exp.spec.get("run") else exp.spec if detail else None)


def _public_result(exp: Experiment) -> dict[str, Any] | None:
    """The search summary without what is the server's business: the storage URL (it may hold credentials)
    and absolute paths (files are named relative to the experiment's folder)."""
    if not exp.result:
        return None
    root = Path(exp.out_dir)

    def rel(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: rel(x) for k, x in v.items()}
        if isinstance(v, str) and v.startswith(str(root) + "/"):
            return v[len(str(root)) + 1:]
        return v

    return rel({k: v for k, v in exp.result.items() if k != "storage"})


def _get(store: Store, exp_id: str) -> tuple[Experiment, Job]:
    return get_with_job(store, Experiment, exp_id, "experiment")


async def _spec_from_request(request: Request) -> dict[str, Any]:
    raw = await request.body()
    ctype = request.headers.get("content-type", "").split(";")[0].strip()
    try:  # YAML's aliases are bounded (a few hundred bytes must not expand to gigabytes); JSON nests boundedly
        data = load_yaml(raw.decode("utf-8")) if "yaml" in ctype else json.loads(raw)
    except RecursionError:
        raise FieldError(("body",), "the body nests too deep to read", type_="json_invalid") from None
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise FieldError(("body",), f"the body must be an experiment spec as JSON (or YAML with a YAML "
                                    f"content type): {exc}", type_="json_invalid") from None
    if not isinstance(data, dict):
        raise FieldError(("body",), "an experiment spec must be an object (name, space, devices, budget, ...)",
                         type_="dict_type")
    return data


@router.post("", status_code=202, response_model=Accepted, openapi_extra=_SPEC_BODY,
             responses=error_responses(503))
async def create_experiment(request: Request, response: Response, store: Store = Depends(get_store),
                            settings: Settings = Depends(get_settings),
                            runner: JobRunner = Depends(get_runner)) -> Accepted:
    data = await _spec_from_request(request)
    exp_id = new_id()
    out_dir = settings.experiments_dir / exp_id
    spec, run_id = prepare_spec(data, exp_id, out_dir, store=store, settings=settings)
    from nas.search.output import service_study_base

    return queue_job(store, runner, response, "search", lambda job: Experiment(
        id=exp_id, name=spec["name"], spec=spec, out_dir=str(out_dir),
        study_name=service_study_base(spec["name"], exp_id), run_id=run_id, job_id=job.id,
        budget=spec_budget(spec)), "/experiments")


@router.get("", response_model=list[ExperimentOut])
def list_experiments(store: Store = Depends(get_store)) -> list[ExperimentOut]:
    return [experiment_out(e, j) for e, j in list_with_jobs(store, Experiment)]


@router.get("/{exp_id}", response_model=ExperimentOut)
def get_experiment(exp_id: str, store: Store = Depends(get_store)) -> ExperimentOut:
    return experiment_out(*_get(store, exp_id), detail=True)


@router.get("/{exp_id}/pareto", response_model=ParetoOut, responses=error_responses(409))
def get_pareto(exp_id: str, device: str = Query(..., description="one of the experiment's devices"),
               store: Store = Depends(get_store), settings: Settings = Depends(get_settings)) -> ParetoOut:
    """The feasible Pareto front of one device: from the finished search's files, or while it runs (or once it
    stopped) from the trials recorded so far. Rows have one shape either way: `trial`, `arch` (OFA keys),
    `feasible`, and each objective's and constraint's value by name, by the first objective ascending."""
    exp, job = _get(store, exp_id)
    devices = spec_devices(exp.spec)
    if device not in devices:
        raise FieldError(("query", "device"), f"experiment '{exp_id}' did not search device '{device}'",
                         allowed=devices)
    from nas.search.output import SearchOutput, live_pareto_rows, study_name, study_table

    objectives = dict(exp.spec.get("objectives") or {})
    constraints = list(device_constraints(exp.spec, device))
    rows = None
    if job.status == "succeeded":
        rows = SearchOutput(exp.out_dir, within=settings.experiments_dir).pareto_rows(device, objectives,
                                                                                       constraints)
    if rows is None:
        trials = study_table(store.optuna_storage(), study_name(exp.study_name, device), list(objectives))
        rows = live_pareto_rows(trials, objectives, constraints) if len(trials) else None
    if rows is None:
        raise Conflict(f"experiment '{exp_id}' is {job.status} and has no Pareto front for '{device}' yet")
    return ParetoOut(experiment=exp_id, device=device, rows=rows)


@router.post("/{exp_id}/cancel", response_model=ExperimentOut)
def cancel_experiment(exp_id: str, store: Store = Depends(get_store),
                      runner: JobRunner = Depends(get_runner)) -> ExperimentOut:
    exp, _ = _get(store, exp_id)
    cancel_job(store, exp.job_id)
    runner.wake()
    return experiment_out(*_get(store, exp_id))


@router.post("/{exp_id}/resume", status_code=202, response_model=Accepted,
             responses=error_responses(409))
def resume_experiment(exp_id: str, store: Store = Depends(get_store),
                      runner: JobRunner = Depends(get_runner)) -> Accepted:
    """Queue an interrupted, failed or cancelled experiment again: its finished trials are kept."""
    exp, _ = _get(store, exp_id)
    try:
        job = resume_job(store, exp.job_id)
    except JobStateError as exc:
        raise Conflict(str(exc)) from None
    runner.wake()
    return Accepted(id=exp_id, status=job.status, url=f"/experiments/{exp_id}")
