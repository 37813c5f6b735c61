"""What the dashboard draws, beside each resource's own routes: an experiment's trials per device (columns, for a
chart of 100k points) and one trial's arch, a run's measured subnets, a device's predictor fidelity, an export's
card.

GET /experiments/{id}/trials?device=D, GET /experiments/{id}/trials/{number}?device=D, GET /runs/{id}/subnets,
GET /devices/{name}/fidelity, GET /exports/{id}/card. Files are read only from the store's own folders.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, Path as PathParam, Query, Response

from nas.api.cache import LruCache
from nas.api.deps import get_settings, get_store
from nas.api.errors import ApiError, Conflict, FieldError, NotFound
from nas.api.queue import get_with_job
from nas.service.resolve import NAME_RE, inside, load_device, resolve_run_dir
from nas.api.schemas import CardOut, DeviceFidelityOut, SubnetsOut, TrialOut, TrialsOut
from nas.api.spec import device_constraints, spec_devices
from nas.service.settings import Settings
from nas.service.store import Experiment, Export, Job, Store

router = APIRouter()
_tables = LruCache(maxsize=8)  # trials tables by (path, mtime): a hover asks for one row of the same 100k-row file
_METRICS = ("accuracy", "latency_ms", "sram_bytes", "flash_bytes", "macs", "params")  # nas.experiment.METRICS


def _id() -> Any:  # a fresh Param per route: FastAPI fills in each one's name
    return PathParam(max_length=32, pattern=r"^[A-Za-z0-9]+$")


def _device() -> Any:
    return Query(..., max_length=128, pattern=NAME_RE.pattern, description="one of the experiment's devices")


_ERRORS = {404: {"description": "no such experiment"}, 422: {"description": "the device was not searched"}}


# ---------------------------------------------------------------------- experiments: trials
def _experiment(store: Store, exp_id: str, device: str) -> tuple[Experiment, Job]:
    exp, job = get_with_job(store, Experiment, exp_id, "experiment")
    devices = spec_devices(exp.spec)
    if device not in devices:
        raise FieldError(("query", "device"), f"experiment '{exp_id}' did not search device '{device}'",
                         allowed=devices)
    return exp, job


def _objectives(exp: Experiment) -> dict[str, str]:
    return dict((exp.spec or {}).get("objectives") or {})


def _constraints(exp: Experiment, device: str) -> dict[str, float]:
    return device_constraints(exp.spec or {}, device)


def _trials(store: Store, settings: Settings, exp: Experiment, job: Job, device: str) -> tuple[pd.DataFrame, str]:
    """The finished search's trials table of `device` (with `arch`), else the trials recorded so far in the
    experiment's Optuna study (the search is running or was stopped)."""
    from nas.search.output import SearchOutput, read_table, study_name, study_table

    if job.status == "succeeded":
        path = SearchOutput(exp.out_dir, within=settings.experiments_dir).file(device, "trials")
        if path is not None:
            return _tables.get((str(path), path.stat().st_mtime_ns), lambda: read_table(path)), "result"
    return study_table(store.optuna_storage(), study_name(exp.study_name, device), list(_objectives(exp))), "study"


def _marks(exp: Experiment, device: str, df: pd.DataFrame) -> tuple[np.ndarray, int | None]:
    """(front: the feasible non-dominated trials, the chosen trial: the experiment's best arch for the device, or
    while it runs, the best feasible trial on the first objective)."""
    from nas.search.output import front_mask

    objectives = {o: d for o, d in _objectives(exp).items() if o in df}
    front = front_mask(df, objectives)
    if not len(df) or not objectives:
        return front, None
    arch = ((exp.best or {}).get(device) or {}).get("arch")
    if arch is not None and "arch" in df:
        from supernet import ArchConfig

        hit = np.flatnonzero(df["arch"].to_numpy() == ArchConfig.from_dict(arch).to_json())
        if len(hit):
            return front, int(df["trial"].iloc[hit[0]])
    first, direction = next(iter(objectives.items()))
    values = df[list(objectives)].to_numpy(np.float64)
    rows = np.flatnonzero(df["feasible"].to_numpy(bool) & np.isfinite(values).all(1))
    if not len(rows):
        return front, None
    pick = rows[int(np.argmax(values[rows, 0]) if direction == "maximize" else np.argmin(values[rows, 0]))]
    return front, int(df["trial"].iloc[pick])


def _column_json(series: pd.Series) -> str:
    if series.dtype == bool:
        return series.to_json(orient="values")
    return pd.to_numeric(series, errors="coerce").to_json(orient="values", double_precision=6)


@router.get("/experiments/{exp_id}/trials", response_model=TrialsOut, tags=["experiments"], responses=_ERRORS)
def get_trials(exp_id: str = _id(), device: str = _device(), store: Store = Depends(get_store),
               settings: Settings = Depends(get_settings)) -> Response:
    """Every finished trial of one device as columns (one array per figure, rows in trial order): the trials table
    of a finished search, or the trials recorded so far while it runs. Floats have 6 decimals."""
    exp, job = _experiment(store, exp_id, device)
    df, source = _trials(store, settings, exp, job, device)
    front, chosen = _marks(exp, device, df)
    df = df.assign(front=front)
    names = ["trial", *[c for c in (*_objectives(exp), *_constraints(exp, device), *_METRICS) if c in df],
             "feasible", "front"]
    names = list(dict.fromkeys(names))
    head = TrialsOut(experiment=exp_id, device=device, status=job.status, source=source, n=len(df),
                     objectives=_objectives(exp), constraints=_constraints(exp, device), chosen=chosen, columns={})
    # built as text: 100k rows through pydantic take seconds, pandas writes them in milliseconds
    columns = ",".join(f"{json.dumps(c)}:{_column_json(df[c])}" for c in names)
    body = head.model_dump_json(exclude={"columns"})[:-1] + ',"columns":{' + columns + "}}"
    return Response(body, media_type="application/json")


@router.get("/experiments/{exp_id}/trials/{number}", response_model=TrialOut, tags=["experiments"],
            responses={404: {"description": "no such experiment or trial"},
                       422: {"description": "the device was not searched"}})
def get_trial(exp_id: str = _id(), number: int = PathParam(ge=0, le=2**31), device: str = _device(),
              store: Store = Depends(get_store), settings: Settings = Depends(get_settings)) -> TrialOut:
    """One trial: its arch (OFA keys) and every figure recorded or predicted for it."""
    exp, job = _experiment(store, exp_id, device)
    df, _ = _trials(store, settings, exp, job, device)
    hit = df.index[df["trial"] == number]
    if not len(hit):
        raise NotFound("trial", f"{exp_id}/{device}/{number}")
    row = df.loc[hit[0]]
    values = {}
    for key in dict.fromkeys([*_objectives(exp), *_constraints(exp, device), *_METRICS]):
        if key in row and row[key] is not None and not (isinstance(row[key], float) and math.isnan(row[key])):
            values[key] = float(row[key])
    return TrialOut(experiment=exp_id, device=device, trial=number, arch=json.loads(row["arch"]),
                    feasible=bool(row["feasible"]), values=values)


# ---------------------------------------------------------------------- runs: measured subnets
@router.get("/runs/{run_id}/subnets", response_model=SubnetsOut, tags=["runs"],
            responses={404: {"description": "no such run"}})
def get_subnets(run_id: str = PathParam(max_length=128, pattern=NAME_RE.pattern), store: Store = Depends(get_store),
                settings: Settings = Depends(get_settings)) -> SubnetsOut:
    """The run's measured subnets (top-1 after BN recalibration, MACs, params, resolution): the accuracy
    predictor's training table and its held-out set, for the checkpoint the run finished with."""
    from predictors.accuracy.dataset import heldout_path, measured_path, read_measured
    from supernet.errors import NasError
    from supernet.run import read_run_info

    run_dir = resolve_run_dir(store, settings, run_id)
    try:
        ckpt = read_run_info(run_dir).checkpoint_hash or ""
    except (OSError, NasError):
        ckpt = ""
    columns: dict[str, list[Any]] = {k: [] for k in ("accuracy", "macs", "params", "r", "split")}
    if ckpt:
        for split, path in (("fit", measured_path(run_dir, ckpt)), ("heldout", heldout_path(run_dir, ckpt))):
            try:
                table = read_measured(path)
            except NasError as exc:
                raise ApiError(500, f"run '{run_id}': {exc}") from None
            for key in ("accuracy", "macs", "params", "r"):
                columns[key] += [None if pd.isna(v) else float(v) for v in table[key]]
            columns["split"] += [split] * len(table)
    return SubnetsOut(run=run_id, checkpoint_hash=ckpt or None, n=len(columns["split"]), columns=columns)


# ---------------------------------------------------------------------- devices: predictor fidelity
@router.get("/devices/{name}/fidelity", response_model=DeviceFidelityOut, tags=["devices"],
            responses={404: {"description": "no such device"}})
def get_device_fidelity(name: str = PathParam(max_length=128), store: Store = Depends(get_store)) -> DeviceFidelityOut:
    """How well each latency predictor of the profile matched held-out measured subnets, per space."""
    profile = load_device(store, name)
    return DeviceFidelityOut(device=profile.name, state=profile.state, spaces={
        space: [f.model_dump() for f in entries] for space, entries in profile.latency.fidelity.items()})


# ---------------------------------------------------------------------- exports: card
@router.get("/exports/{export_id}/card", response_model=CardOut, tags=["exports"],
            responses={404: {"description": "no such export"}, 409: {"description": "not finished"},
                       410: {"description": "the bundle is gone"}})
def get_card(export_id: str = _id(), store: Store = Depends(get_store),
             settings: Settings = Depends(get_settings)) -> CardOut:
    """The bundle's model card (card.json): accuracy and latency predicted beside measured, the memory verdict."""
    ex, job = get_with_job(store, Export, export_id, "export")
    if job.status != "succeeded" or not ex.bundle_dir:
        raise Conflict(f"export '{export_id}' is {job.status}; its card exists once it succeeded")
    card = Path(ex.bundle_dir) / "card.json"
    if not inside(card, settings.exports_dir) or not card.is_file():
        raise ApiError(410, f"export '{export_id}' card is no longer in the store's exports folder")
    data = json.loads(card.read_text())
    data.pop("command", None)  # it names the server's folders
    return CardOut(export=export_id, card=data)
