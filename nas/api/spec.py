"""Experiment specs arriving over HTTP: names checked against what the server knows, locations set by the server.

A spec is what `nas search` reads (`nas.experiment.ExperimentSpec`). Over the API, `space` must be a known space
name, every device a known device name, `run` a known run id (replaced by that run's folder here); anything that
would choose where files go (output folders, storage URLs) is the server's to set and is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nas.api.errors import ApiError, FieldError, validation_detail
from nas.service.resolve import load_device, load_space, resolve_run_dir
from nas.service.settings import Settings
from nas.service.store import Store

SERVER_KEYS = ("out_dir", "output", "output_dir", "storage", "study_name", "db", "path")


def _device_name(entry: Any) -> str | None:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict):
        value = entry.get("name", entry.get("device"))
        return value if isinstance(value, str) else None
    return None


def spec_devices(spec: dict[str, Any]) -> list[str]:
    devices = spec.get("devices") or []
    if isinstance(devices, dict):
        return [str(k) for k in devices]
    return [n for n in (_device_name(d) for d in devices) if n]


def device_constraints(spec: dict[str, Any], device: str) -> dict[str, float]:
    """A device's constraints in a stored spec (absolute: relative budgets are resolved at creation)."""
    for entry in spec.get("devices") or []:
        if isinstance(entry, dict) and entry.get("name") == device:
            return {k: float(v) for k, v in (entry.get("constraints") or {}).items()}
    return {}


def spec_budget(spec: dict[str, Any]) -> int:
    """Trials in all: the spec's budget per device times its devices."""
    search = spec.get("search") if isinstance(spec.get("search"), dict) else spec
    budget = search.get("budget", spec.get("budget", 0))
    try:
        return int(budget) * max(1, len(spec_devices(spec)))
    except (TypeError, ValueError):
        return 0


def prepare_spec(data: dict[str, Any], exp_id: str, out_dir: Path, *, store: Store,
                 settings: Settings) -> tuple[dict[str, Any], str | None]:
    """(the validated spec as plain JSON, the run id it names): names resolved, server-owned keys refused, and
    everything `nas.experiment.check_spec` can find wrong before searching (impossible budgets, an accuracy
    objective without a run, unknown strategies) answered now as a 422. Relative budgets come back resolved."""
    try:
        from nas.experiment import ExperimentSpec, SpecError, check_spec, resolve_budgets
    except ImportError as exc:
        raise ApiError(503, f"searches are not available in this install: {exc}") from None
    for key in SERVER_KEYS:
        if key in data:
            raise FieldError(("body", key), f"'{key}' is set by the server for experiments it runs; leave it out")
    spec = dict(data)
    if spec.get("space") is not None:
        if not isinstance(spec["space"], str):
            raise FieldError(("body", "space"), "space must be a space name")
        load_space(spec["space"], ("body", "space"))
    devices = spec.get("devices")
    if isinstance(devices, list):
        spec["devices"] = []
        for i, entry in enumerate(devices):
            entry = {"name": entry} if isinstance(entry, str) else entry
            name = _device_name(entry)
            loc = ("body", "devices", i, "name")
            if name is None:
                raise FieldError(loc, "each device must be a device name, or an object with its name and constraints")
            load_device(store, name, loc)
            spec["devices"].append(entry)
    run_id = None
    if spec.get("run") is not None:
        if not isinstance(spec["run"], str):
            raise FieldError(("body", "run"), "run must be a run id (GET /runs)")
        run_id = spec["run"]
        spec["run"] = str(resolve_run_dir(store, settings, run_id, ("body", "run")))
    try:
        parsed = ExperimentSpec.model_validate(spec)
    except ValidationError as exc:
        raise ApiError(422, validation_detail(exc)) from None
    try:
        predictors = check_spec(parsed, from_client=True)
    except SpecError as exc:
        raise FieldError(("body", *exc.loc), str(exc), type_="spec_error") from None
    # a relative budget ("60%") is fixed now, on the device's profile as it is at creation, so a resumed
    # experiment searches under the same figures
    out = resolve_budgets(parsed, predictors).model_dump(mode="json")
    if run_id is not None:
        out["run"] = spec["run"]
    return out, run_id


