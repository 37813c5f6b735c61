"""What the app does before a route sees a request: the bearer token (401 before anything reads the body), the
body size limit (413, declared or streamed), and an `Allow` listing every method of a path (OPTIONS, 405)."""

from __future__ import annotations

import hmac
import json
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match


async def _send_json(send: Any, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def token_ok(token: str | None, authorization: str | None) -> bool:
    """True when the server has no token, or `authorization` is `Bearer <token>` (compared in constant time)."""
    if not token:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _path_regex(template: str) -> re.Pattern[str]:
    """`/experiments/{exp_id}` -> a regex matching its paths (a parameter is one path segment)."""
    return re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$")


class TokenGate:
    """ASGI middleware: 401 for a request to an operation behind the token (one whose OpenAPI entry declares the
    bearer security: the routes that depend on `require_token`) that lacks it, before the body is read or
    validated. Other requests (/healthz, the docs, static pages, unknown paths, other methods) pass."""

    def __init__(self, app: Any, fastapi_app: FastAPI, token: str | None) -> None:
        self.app, self.fastapi_app, self.token = app, fastapi_app, token
        self._guarded: list[tuple[re.Pattern[str], str]] | None = None

    def _needs_token(self, scope: dict) -> bool:
        if self._guarded is None:  # the document is built once, after every route was added
            self._guarded = [(_path_regex(path), method.upper())
                             for path, ops in self.fastapi_app.openapi().get("paths", {}).items()
                             for method, op in ops.items() if op.get("security")]
        path = scope.get("path", "")
        return any(method == scope["method"] and rx.match(path) for rx, method in self._guarded)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.token and self._needs_token(scope):
            headers = dict(scope.get("headers", []))
            auth = headers.get(b"authorization", b"").decode("latin-1")
            if not token_ok(self.token, auth):
                return await _send_json(send, 401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
        await self.app(scope, receive, send)


class BodyLimit:
    """ASGI middleware: 413 for a request body over `limit` bytes, declared (Content-Length) or sent chunked.

    The body is read here, up to the limit, before the app sees it: a chunked body that grows past the limit is
    answered 413 itself, rather than failing mid-parse as a 400 inside the app."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for key, value in scope.get("headers", []):
            if key == b"content-length" and value.isdigit() and int(value) > self.limit:
                return await self._too_large(send)
        chunks, seen, first = [], 0, None
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: let the app see it
                first = message
                break
            seen += len(message.get("body", b""))
            if seen > self.limit:
                return await self._too_large(send)
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return first or {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Any) -> None:
        await _send_json(send, 413, f"request body is larger than the limit of {self.limit} bytes",
                         {"Connection": "close"})


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(app: FastAPI, scope: dict) -> list[str]:
    """Every method some route answers at this request's path (asked of the router itself), and OPTIONS."""
    found = {"OPTIONS"}
    for method in _METHODS:
        probe = {**scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in app.router.routes):
            found.add(method)
    return sorted(found)


def install_method_handling(app: FastAPI) -> None:
    """OPTIONS answers 204 with `Allow`; a method a path does not take answers 405 with the same full `Allow`
    (Starlette's own names only the first route it matched: GET for a path that also takes POST)."""

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code != 405:
            return await http_exception_handler(request, exc)
        allow = ", ".join(allowed_methods(request.app, request.scope))
        if request.method == "OPTIONS":
            return Response(status_code=204, headers={"Allow": allow})
        return JSONResponse({"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": allow})
