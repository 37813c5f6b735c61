"""From names in requests to things on disk, checked: no path a client sends reaches the file system as given.

Spaces and devices are looked up by name among the known ones (a name is never read as a path); runs are the
store's registered runs or folders directly under the runs folder holding a run.json; downloads come only from
folders under the store's own exports folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from sqlalchemy import select

from nas.service.settings import Settings
from nas.service.store import Device, Run, Store
from supernet.errors import NasError

if TYPE_CHECKING:
    from supernet.run import RunInfo

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class NotFoundError(NasError):
    """No `what` with id `ident` (the API answers 404)."""

    def __init__(self, what: str, ident: str) -> None:
        super().__init__(f"{what} '{ident}' not found")


class UnknownNameError(NasError):
    """A name given at `loc` of a request (its full path, e.g. ("body", "devices", 0)) is none of the known ones,
    listed in `allowed` (the API answers 422)."""


def valid_name(name: str) -> bool:
    """A name that is also a safe single path component (no separators, no `..`)."""
    return bool(NAME_RE.match(name)) and ".." not in name


def inside(path: Path, root: Path) -> bool:
    """True if `path` (resolved, links followed) lies within `root`."""
    try:
        return path.resolve().is_relative_to(root.resolve())
    except OSError:
        return False


# ---------------------------------------------------------------------- spaces
def space_names() -> list[str]:
    from supernet import available_spaces

    return available_spaces()


def load_space(name: str, loc: Sequence[str | int] = ("body", "space")):
    from supernet import SearchSpace

    names = space_names()
    if name not in names:
        raise UnknownNameError(f"unknown space '{name}'", loc=loc, allowed=names)
    return SearchSpace.preset(name)


# ---------------------------------------------------------------------- devices
def device_names(store: Store) -> list[str]:
    from hw_profiles import list_profiles

    with store.session() as s:
        stored = list(s.scalars(select(Device.name)))
    return sorted(set(list_profiles()) | set(stored))


def device_origin(store: Store, name: str) -> str | None:
    with store.session() as s:
        row = s.get(Device, name)
        return row.origin if row is not None else None


def load_device(store: Store, name: str, loc: Sequence[str | int] | None = None):
    """The profile named `name` (uploaded to the store first, then measured here or shipped)."""
    from hw_profiles import list_profiles, load_profile
    from hw_profiles.store import read_profile

    with store.session() as s:
        row = s.get(Device, name)
        path = Path(row.path) if row is not None else None
    if path is not None:
        return read_profile(path)
    if valid_name(name) and name in list_profiles():
        return load_profile(name)
    if loc is None:
        raise NotFoundError("device", name)
    raise UnknownNameError(f"unknown device '{name}'", loc=loc, allowed=device_names(store))


# ---------------------------------------------------------------------- runs
def _run_info(run_dir: Path) -> RunInfo | None:
    from supernet.run import read_run_info

    try:
        return read_run_info(run_dir)
    except (OSError, NasError):
        return None


def discover_runs(settings: Settings) -> dict[str, Path]:
    """Run folders directly under the runs folder that hold a run.json, by folder name."""
    root = settings.runs_dir.resolve()
    if not root.is_dir():
        return {}
    return {p.parent.name: p.parent for p in sorted(root.glob("*/run.json")) if valid_name(p.parent.name)}


def list_runs(store: Store, settings: Settings) -> dict[str, Path]:
    runs = discover_runs(settings)
    with store.session() as s:
        for row in s.scalars(select(Run)):
            runs[row.id] = Path(row.path)
    return dict(sorted(runs.items()))


def resolve_run_dir(store: Store, settings: Settings, run_id: str, loc: Sequence[str | int] | None = None) -> Path:
    """The folder of run `run_id` (registered in the store or found under the runs folder)."""
    with store.session() as s:
        row = s.get(Run, run_id)
        if row is not None:
            return Path(row.path)
    if valid_name(run_id):
        candidate = settings.runs_dir.resolve() / run_id
        if (candidate / "run.json").is_file() and inside(candidate, settings.runs_dir):
            return candidate
    if loc is None:
        raise NotFoundError("run", run_id)
    raise UnknownNameError(f"unknown run '{run_id}'", loc=loc, allowed=list(list_runs(store, settings)))


def run_summary(run_id: str, run_dir: Path, *, detail: bool = False) -> dict[str, Any]:
    """What GET /runs shows of a run: its space, checkpoint, whether it is finished, its predictors and fidelity."""
    info = _run_info(run_dir)
    out: dict[str, Any] = {
        "id": run_id,
        "space": info.space.get("name") if info else None,
        "checkpoint_hash": info.checkpoint_hash if info else None,
        "finished": bool(info and info.finished),
        "weights": (run_dir / "supernet.pt").is_file(),
        "predictors": _predictor_files(run_dir),
        "fidelity": _fidelity(run_dir),
        "imported": info.imported if info else None,
    }
    if detail:
        out["info"] = {k: v for k, v in info.to_dict().items() if k != "space"} if info else {}
        out["space_config"] = info.space if info else None
    return out


def _predictor_files(run_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for sub in ("accuracy", "predictors", "accuracy_predictor"):
        folder = run_dir / sub
        if folder.is_dir():
            out[sub] = sorted(p.name for p in folder.iterdir() if p.is_file())
    return out


def _fidelity(run_dir: Path) -> dict[str, Any] | None:
    """Fidelity figures written beside the run's predictors (any `*fidelity*.json` in the run or its folders)."""
    found: dict[str, Any] = {}
    for p in sorted(run_dir.glob("*fidelity*.json")) + sorted(run_dir.glob("*/*fidelity*.json")):
        try:
            found[str(p.relative_to(run_dir))] = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
    for meta in (sorted(run_dir.glob("*/manifest.json")) + sorted(run_dir.glob("*/meta.json"))
                 + sorted(run_dir.glob("*/predictor.json"))):
        try:
            data = json.loads(meta.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and "fidelity" in data:
            found[str(meta.relative_to(run_dir))] = data["fidelity"]
    return found or None
