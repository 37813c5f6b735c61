"""GET /devices, GET /devices/{name}, POST /devices: device profiles, shipped, measured here, or added through the
API (a profile YAML/JSON, schema-validated; or a CSV of measured archs from which a learned latency model is fitted,
as `nas latency fit` does)."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

import yaml
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from starlette.concurrency import run_in_threadpool
from pydantic import ValidationError

from nas.api.deps import get_settings, get_store
from nas.api.errors import Conflict, FieldError, validation_detail, ApiError
from nas.service.resolve import device_names, device_origin, load_device, load_space, space_names, valid_name
from nas.api.openapi import error_responses
from nas.api.schemas import DeviceOut
from nas.service.settings import Settings
from nas.service.store import Device, Store
from supernet._io import load_yaml

router = APIRouter(prefix="/devices", tags=["devices"])
KINDS = ("cpu", "gpu", "mcu")


def _out(store: Store, profile: Any) -> DeviceOut:
    from hw_profiles import user_profiles_dir

    origin = device_origin(store, profile.name)
    if origin is None:
        in_user = profile.path and str(profile.path).startswith(str(user_profiles_dir()))
        origin = "measured" if in_user else "shipped"
    lat = profile.latency
    model = [name for name, present in (("lookup-table", lat.lookup_table is not None), ("learned", lat.learned is not None),
                                        ("corrections", bool(lat.corrections))) if present]
    return DeviceOut(name=profile.name, kind=profile.kind, description=profile.description, state=profile.state,
                     origin=origin, specs={k: v.model_dump() for k, v in profile.specs.items()},
                     mcu={k: v.model_dump() for k, v in profile.mcu.items()}, latency_model=model)


@router.get("", response_model=list[DeviceOut])
def list_devices(store: Store = Depends(get_store)) -> list[DeviceOut]:
    return [_out(store, load_device(store, n)) for n in device_names(store)]


@router.get("/{name}", response_model=DeviceOut)
def get_device(name: str, store: Store = Depends(get_store)) -> DeviceOut:
    return _out(store, load_device(store, name))


async def _read_limited(file: UploadFile, limit: int) -> bytes:
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, f"upload is larger than the limit of {limit} bytes")
    return data


@router.post("", response_model=DeviceOut, status_code=201, responses=error_responses(409))
async def add_device(request: Request, file: UploadFile = File(..., description="a profile (.yaml/.json) or "
                                                                                "measurements (.csv: arch, latency_ms)"),
                     name: str | None = Form(None, description="device name (required for a CSV)"),
                     space: str | None = Form(None, description="the space the CSV's archs belong to"),
                     kind: str | None = Form(None, description="cpu, gpu or mcu: the new device's kind (CSV; "
                                                               "default: the base's)"),
                     base: str | None = Form(None, description="a known device whose specs a CSV fit starts from"),
                     spec: str | None = Form(None, description="spec figures of a new device (CSV), e.g. "
                                                               "'sram=256KB,flash=1MB'"),
                     replace: bool = Form(False, description="replace a device added earlier with the same name"),
                     store: Store = Depends(get_store), settings: Settings = Depends(get_settings)) -> DeviceOut:
    if name:
        _check_name(store, name, replace)  # before any parse or fit
    data = await _read_limited(file, settings.max_upload_bytes)
    filename = (file.filename or "").lower()
    # parsing and fitting take seconds on a large upload: in a worker thread, so the server answers meanwhile
    if filename.endswith(".csv") or (file.content_type or "").startswith("text/csv"):
        profile, origin = await run_in_threadpool(_fit_from_csv, store, data, name, space, kind, base, spec), "fitted"
    else:
        profile, origin = await run_in_threadpool(_parse_profile, data, name), "uploaded"
    _check_name(store, profile.name, replace)

    from hw_profiles import save_profile

    path = save_profile(profile, settings.profiles_dir / f"{profile.name}.yaml")
    with store.session() as s:
        row = s.get(Device, profile.name) or Device(name=profile.name)
        row.kind, row.origin, row.path = profile.kind, origin, str(path)
        s.add(row)
    request.app.state.predictors.drop(lambda key: key[1] == profile.name)
    return _out(store, load_device(store, profile.name))


def _check_name(store: Store, name: str, replace: bool) -> None:
    """422 for a name that cannot be a profile's, 409 for one taken (unless an upload may replace it)."""
    if not valid_name(name):
        raise FieldError(("body", "name"), f"device name '{name}' must match {r'[A-Za-z0-9][A-Za-z0-9._-]*'} "
                                           "(at most 128 characters)")
    existing = device_origin(store, name)
    if existing is None and name in device_names(store):
        raise Conflict(f"device '{name}' is a shipped or measured profile; upload under another name")
    if existing is not None and not replace:
        raise Conflict(f"device '{name}' exists; send replace=true to replace it")


def _parse_profile(data: bytes, name: str | None) -> Any:
    from hw_profiles import DeviceProfile

    try:
        parsed = load_yaml(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise FieldError(("body", "file"), f"not a YAML or JSON profile: {exc}") from None
    if not isinstance(parsed, dict):
        raise FieldError(("body", "file"), "a profile must be a mapping with name, kind, specs, ...")
    if name:
        parsed["name"] = name
    parsed.pop("path", None)
    try:
        return DeviceProfile.model_validate(parsed)
    except ValidationError as exc:
        raise ApiError(422, validation_detail(exc, ("body", "file"))) from None


def _fit_from_csv(store: Store, data: bytes, name: str | None, space_name: str | None, kind: str | None,
                  base: str | None, spec: str | None) -> Any:
    """A profile whose latency is a learned model fitted on whole-subnet measurements (columns arch, latency_ms)."""
    import numpy as np

    from hw_profiles import DeviceProfile, ProfileError, new_profile, parse_specs
    from hw_profiles.schema import Fidelity
    from predictors.api import correction_key
    from predictors.learned import LearnedLatency
    from supernet.errors import NasError

    if not name:
        raise FieldError(("body", "name"), "a CSV upload needs the new device's name")
    if not space_name:
        raise FieldError(("body", "space"), "a CSV upload needs the space its archs belong to",
                         allowed=space_names())
    if kind is not None and kind not in KINDS:
        raise FieldError(("body", "kind"), f"kind '{kind}' is not allowed", allowed=KINDS)
    space = load_space(space_name)
    if kind is None and not base:
        raise FieldError(("body", "kind"), "a new device needs its kind (or a base device)", allowed=KINDS)
    start = load_device(store, base, ("body", "base")) if base else None
    try:
        specs = parse_specs([spec] if spec else [], "spec")
    except ProfileError as exc:
        raise FieldError(("body", "spec"), str(exc)) from None
    try:
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise FieldError(("body", "file"), f"not a CSV file: {exc}") from None
    if not rows or not {"arch", "latency_ms"} <= set(rows[0]):
        raise FieldError(("body", "file"), "the CSV needs columns 'arch' (the arch as JSON) and 'latency_ms'")
    archs, ms = [], []
    for i, row in enumerate(rows):
        try:
            archs.append(space.arch_from_dict(json.loads(row["arch"])))
            ms.append(float(row["latency_ms"]))
            if not (math.isfinite(ms[-1]) and ms[-1] > 0):
                raise ValueError(f"latency_ms must be a positive finite number of ms, got {row['latency_ms']!r}")
        except (json.JSONDecodeError, ValueError, TypeError, NasError) as exc:
            raise FieldError(("body", "file", i + 2), f"row {i + 2}: {exc}") from None
    codes, y = space.encode(archs), np.asarray(ms)
    try:
        model = LearnedLatency(space).fit(codes, y)
        cv = model.cross_validate(codes, y) if len(y) >= 6 else None
    except NasError as exc:
        raise FieldError(("body", "file"), str(exc)) from None
    try:
        prof = new_profile(name, kind, base=start, specs=specs, description=f"learned latency fitted on {len(y)} "
                                                                            f"measured archs of {space.name}")
    except ProfileError as exc:
        raise FieldError(("body", exc.field or "file"), str(exc)) from None
    prof.state = "fitted"
    lat = prof.latency.model_copy(deep=True)
    lat.learned = model.to_model(note=f"fitted on {len(y)} archs uploaded through the API")
    lat.corrections = {**lat.corrections, correction_key(space, "learned"): model.correction}
    if cv is not None:
        fid = Fidelity(predictor="learned", n=cv["n"], spearman=cv["spearman"], kendall=cv["kendall"],
                       rmse=cv["rmse"], mape=cv["mape"], within_10pct=cv["within_10pct"], source="fitted")
        lat.fidelity = {**lat.fidelity, space.name: [fid]}
    lat.lookup_table = None  # the fitted model is what this device's latency comes from
    try:  # validated whole, as an uploaded profile is: a degenerate fit must not store NaN coefficients
        return DeviceProfile.model_validate({**prof.model_dump(), "latency": lat.model_dump()})
    except ValidationError as exc:
        raise FieldError(("body", "file"), f"the fitted model is unusable: {exc.errors()[0]['msg']}") from None
