"""GET /healthz: is the server up, which database, how busy (the only route that needs no token)."""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, Depends
from sqlalchemy.engine import make_url

from nas.api.deps import get_runner, get_settings
from nas.api.schemas import Health
from nas.service.jobs import JobRunner
from nas.service.settings import Settings

router = APIRouter(tags=["health"])


@lru_cache(maxsize=1)
def _version() -> str:
    try:
        return version("ofa-nas")
    except PackageNotFoundError:
        return "unknown"


@router.get("/healthz", response_model=Health)
def healthz(settings: Settings = Depends(get_settings), runner: JobRunner = Depends(get_runner)) -> Health:
    return Health(version=_version(), database=make_url(settings.database_url).get_backend_name(),
                  workers=settings.workers, running_jobs=len(runner.running))
