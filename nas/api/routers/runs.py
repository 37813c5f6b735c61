"""GET /runs, GET /runs/{id}: trained supernets (run folders under the runs folder, or registered in the store),
with their predictors and fidelity figures."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from nas.api.deps import get_settings, get_store
from nas.service.resolve import list_runs, resolve_run_dir, run_summary
from nas.api.schemas import RunOut
from nas.service.settings import Settings
from nas.service.store import Store

router = APIRouter(prefix="/runs", tags=["runs"])


@router.get("", response_model=list[RunOut])
def get_runs(store: Store = Depends(get_store), settings: Settings = Depends(get_settings)) -> list[RunOut]:
    return [RunOut(**run_summary(rid, path)) for rid, path in list_runs(store, settings).items()]


@router.get("/{run_id}", response_model=RunOut)
def get_run(run_id: str, store: Store = Depends(get_store), settings: Settings = Depends(get_settings)) -> RunOut:
    return RunOut(**run_summary(run_id, resolve_run_dir(store, settings, run_id), detail=True))
