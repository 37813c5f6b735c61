"""The dashboard at /ui/: static files shipped in the package (nas/api/ui), no build step, nothing fetched at run
time. Every /ui/... path that is not one of those files answers the page itself, so a view's URL
(/ui/experiments/{id}, ...) can be shared and reloaded. The page needs no token; the API calls it makes do."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

UI_DIR = Path(__file__).resolve().parents[1] / "ui"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml",
          ".txt": "text/plain"}
router = APIRouter(include_in_schema=False)


def _files() -> dict[str, Path]:
    return {p.name: p for p in UI_DIR.iterdir() if p.is_file() and p.suffix in _TYPES}


@router.get("/ui")
def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/")


@router.get("/ui/{path:path}")
def ui(path: str) -> FileResponse:
    # only the shipped files by name: no client path reaches the file system
    name = path.removeprefix("static/") if path.startswith("static/") else None
    files = _files()
    target = files.get(name) if name else files["index.html"]
    if target is None:
        from nas.api.errors import NotFound

        raise NotFound("dashboard file", path)
    headers = {"Cache-Control": "no-cache"}
    return FileResponse(target, media_type=_TYPES[target.suffix] + "; charset=utf-8", headers=headers)
