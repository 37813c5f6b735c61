"""Dependencies shared by the routers: the settings, the store, the job runner, the bearer token check."""

from __future__ import annotations

import hmac

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from nas.api.errors import ApiError
from nas.jobs import JobRunner
from nas.settings import Settings
from nas.store import Store

_bearer = HTTPBearer(auto_error=False, description="the server's token (`nas serve --token` or NAS_API_TOKEN)")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_runner(request: Request) -> JobRunner:
    return request.app.state.runner


def require_token(request: Request,
                  credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    """401 unless the request carries `Authorization: Bearer <token>` (when the server has a token)."""
    token = request.app.state.settings.token
    if not token:
        return
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise ApiError(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})
