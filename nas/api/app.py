"""`create_app(settings)`: the FastAPI app. The store and the job runner start with the app and stop with it."""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import Depends, FastAPI

from nas.api.cache import LruCache
from nas.api.deps import require_token
from nas.api.errors import install_error_handlers
from nas.api.middleware import BodyLimit, TokenGate, install_method_handling
from nas.api.openapi import document_responses
from nas.api.routers import details, devices, experiments, exports, health, predict, runs, spaces, ui
from nas.service.jobs import JobRunner
from nas.service.settings import Settings
from nas.service.store import Store

log = logging.getLogger("nas.api")


def create_app(settings: Settings | None = None, *, start_jobs: bool = True) -> FastAPI:
    """The REST API over the store at `settings.database_url`; with `start_jobs`, a job runner runs beside it."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # hw_profiles finds profiles added here by name, in this process and in the workers
        # (nas.service.jobs.worker_env)
        os.environ["NAS_PROFILES_DIR"] = str(settings.profiles_dir)
        store = Store(settings.database_url).create()
        runner = JobRunner(store, settings)
        app.state.store, app.state.runner = store, runner
        if start_jobs:
            runner.start()
        try:
            yield
        finally:
            if start_jobs:
                runner.stop()
            store.close()

    app = FastAPI(title="ofa-nas", version="0.1.0", lifespan=lifespan,
                  description="Once-for-all NAS as a service: spaces, devices, trained runs, predictions, search "
                              "experiments and export bundles. Send `Authorization: Bearer <token>` when the server "
                              "has a token (every route but /healthz needs it then). The dashboard is at /ui/.")
    app.state.settings = settings
    app.state.predictors = LruCache(maxsize=64)
    install_error_handlers(app)
    install_method_handling(app)
    app.include_router(health.router)
    guarded = [Depends(require_token)] if settings.token else []  # no token: no security in the OpenAPI document
    for module in (spaces, devices, runs, predict, experiments, exports, details):
        app.include_router(module.router, dependencies=guarded)
    app.include_router(ui.router)  # the dashboard's static page (its API calls carry the token)
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes)
    app.add_middleware(TokenGate, fastapi_app=app, token=settings.token)  # outermost: 401 before the body is read
    document_responses(app)
    return app


__all__ = ["create_app"]
