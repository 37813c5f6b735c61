"""Errors the API answers with: 404 for unknown ids, 422 naming the field's path and what is allowed.

Every 422 body has FastAPI's shape, `{"detail": [{"loc": [...], "msg": ..., "type": ...}]}`, whether pydantic or
our own checks found the problem; `ctx.allowed` lists the allowed values where there is a short list of them.
"""

from __future__ import annotations

from typing import Any, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from nas.service.resolve import NotFoundError, UnknownNameError
from supernet.errors import NasError


class ApiError(Exception):
    """An error with an HTTP status and a JSON body."""

    def __init__(self, status: int, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(str(detail))
        self.status, self.detail, self.headers = status, detail, headers


class NotFound(ApiError):
    def __init__(self, what: str, ident: str) -> None:
        super().__init__(404, f"{what} '{ident}' not found")


class Conflict(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(409, message)


class FieldError(ApiError):
    """422 for one field: `loc` is its path (e.g. ("body", "archs", 3, "ks", 2))."""

    def __init__(self, loc: Sequence[str | int], msg: str, allowed: Sequence[Any] | None = None,
                 type_: str = "value_error") -> None:
        item: dict[str, Any] = {"loc": list(loc), "msg": msg, "type": type_}
        if allowed is not None:
            item["ctx"] = {"allowed": list(allowed)}
        super().__init__(422, [item])


def validation_detail(exc: ValidationError, prefix: Sequence[str | int] = ("body",)) -> list[dict[str, Any]]:
    """Pydantic errors as 422 items, their paths under `prefix`."""
    out = []
    for err in exc.errors(include_url=False):
        item = {"loc": [*prefix, *err["loc"]], "msg": err["msg"], "type": err["type"]}
        ctx = err.get("ctx")
        if ctx:
            item["ctx"] = {k: (v if isinstance(v, (str, int, float, bool, list)) or v is None else str(v))
                           for k, v in ctx.items()}
        out.append(item)
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = []
        for err in exc.errors():
            item = {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}
            ctx = err.get("ctx")
            if ctx:
                item["ctx"] = {k: (v if isinstance(v, (str, int, float, bool, list)) or v is None else str(v))
                               for k, v in ctx.items()}
            detail.append(item)
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(UnknownNameError)
    async def _unknown_name(_: Request, exc: UnknownNameError) -> JSONResponse:
        return JSONResponse({"detail": nas_error_detail(exc, (), "value_error")}, status_code=422)

    @app.exception_handler(NasError)
    async def _nas_error(_: Request, exc: NasError) -> JSONResponse:
        # typed user errors from the library (bad arch, unknown space, malformed profile) that no route mapped
        return JSONResponse({"detail": nas_error_detail(exc)}, status_code=422)


def nas_error_detail(exc: NasError, prefix: Sequence[str | int] = ("body",), type_: str | None = None
                     ) -> list[dict[str, Any]]:
    """A typed library error as one 422 item: its field location (`exc.loc`) under `prefix`, its allowed values."""
    item: dict[str, Any] = {"loc": [*prefix, *exc.loc], "msg": str(exc), "type": type_ or type(exc).__name__}
    if exc.allowed is not None:
        item["ctx"] = {"allowed": exc.allowed}
    return [item]
