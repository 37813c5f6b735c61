"""The REST API: `create_app(settings)` builds the FastAPI app, one router per resource (see `nas.api.routers`)."""

from nas.api.app import create_app

__all__ = ["create_app"]
