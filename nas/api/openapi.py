"""The OpenAPI document as the API behaves: every status a route can answer is documented, with its body.

FastAPI documents a route's own `responses=` and a 422 when it has parameters. What the app adds around routes
is documented here, for every route the app has (so a router added later is covered without work of its own):

- a request body: 400 (a body that cannot be parsed as its content type), 413 (over the upload limit), 422;
- path parameters: 404 (no such id or name); any parameter: 422;
- a route behind the token (its operation declares the bearer security, which only a server with a token
  declares): 401.

Statuses only some routes answer (409, 410, 503) are declared on the route with `error_responses(...)`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from nas.api.schemas import ErrorOut, ValidationErrorOut

_DESCRIPTIONS = {
    400: "the body could not be parsed as its content type",
    401: "missing or wrong bearer token",
    404: "no such resource",
    409: "the resource is not in a state that allows this",
    410: "the resource is gone",
    413: "the request body is larger than the server's limit",
    422: "a field is invalid: `loc` is its path, `ctx.allowed` the allowed values where they are few",
    503: "not available in this install",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that answers these statuses besides the ones every route of its shape answers."""
    return {s: {"model": ValidationErrorOut if s == 422 else ErrorOut,
                "description": _DESCRIPTIONS.get(s, "an error")} for s in statuses}


def _ref(model: type) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}


def document_responses(app: FastAPI) -> None:
    """Make `app.openapi()` document the statuses the app adds around its routes (see the module's doc)."""
    done: list[Any] = [None]

    def openapi() -> dict[str, Any]:
        schema = FastAPI.openapi(app)
        if schema is done[0]:
            return schema
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (ErrorOut, ValidationErrorOut):
            defs = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(defs.pop("$defs", {}))
            components[model.__name__] = defs
        for ops in schema.get("paths", {}).values():
            for op in ops.values():
                if not isinstance(op, dict) or "responses" not in op:
                    continue  # a path-level entry, not an operation
                statuses = set()
                if "requestBody" in op:
                    statuses |= {400, 413, 422}
                params = op.get("parameters", [])
                if params:
                    statuses.add(422)
                if any(p.get("in") == "path" for p in params):
                    statuses.add(404)
                if op.get("security"):
                    statuses.add(401)
                responses = op.setdefault("responses", {})
                for status in sorted(statuses):
                    model = ValidationErrorOut if status == 422 else ErrorOut
                    responses[str(status)] = {"description": _DESCRIPTIONS[status], **_ref(model)}
        done[0] = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
