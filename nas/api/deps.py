"""Dependencies shared by the routers: the settings, the store, the job runner, the bearer token check."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from nas.api.errors import ApiError
from nas.api.middleware import token_ok
from nas.service.jobs import JobRunner
from nas.service.settings import Settings
from nas.service.store import Store

_bearer = HTTPBearer(auto_error=False, description="the server's token (NAS_API_TOKEN, or `nas serve --token-file`)")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_runner(request: Request) -> JobRunner:
    return request.app.state.runner


def require_token(request: Request,
                  credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    """401 unless the request carries `Authorization: Bearer <token>` (when the server has a token)."""
    # nas.api.middleware.TokenGate has already answered 401 before the body was read; this is the same check, for
    # the OpenAPI document's security and for an app mounted without that middleware
    if not token_ok(request.app.state.settings.token, request.headers.get("authorization")):
        raise ApiError(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})
