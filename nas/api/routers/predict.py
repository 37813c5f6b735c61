"""POST /predict: accuracy, latency, MACs, params, SRAM, Flash and fit for a batch of archs on several devices.

`Predictors` objects are cached per (space, device, run), so a request only encodes its archs and runs the
vectorised predictors: hundreds of archs answer in milliseconds.
"""

from __future__ import annotations

import math

import numpy as np

from fastapi import APIRouter, Depends, Request

from nas.api.deps import get_settings, get_store
from nas.api.errors import FieldError
from nas.service.resolve import UnknownNameError, load_device, load_space, resolve_run_dir
from nas.api.schemas import ArchIn, Prediction, PredictRequest, PredictResponse
from nas.service.settings import Settings
from nas.service.store import Store
from supernet import SearchSpace
from supernet.errors import CheckpointError, InvalidArchError, NasError

router = APIRouter(tags=["predict"])


@router.post("/predict", response_model=PredictResponse)
def predict(body: PredictRequest, request: Request, store: Store = Depends(get_store),
            settings: Settings = Depends(get_settings)) -> PredictResponse:
    from predictors import Predictors

    cache = request.app.state.predictors
    space = cache.get(("space", body.space), lambda: load_space(body.space))
    codes = encode_archs(space, body.archs)
    run_dir = None
    if body.run is not None:
        run_dir = resolve_run_dir(store, settings, body.run, ("body", "run"))
    rows: list[Prediction] = []
    sources: dict[str, str] = {}
    for j, device in enumerate(body.devices):
        def build(device: str = device, j: int = j) -> Predictors:
            profile = load_device(store, device, ("body", "devices", j))
            return Predictors.for_run(run_dir, profile) if run_dir is not None else Predictors(space, profile)

        try:
            # keyed by name: an upload that replaces a device drops its entries (routers/devices.py)
            p = cache.get((space.name, device, body.run), build)
            if p.space.name != space.name:
                raise FieldError(("body", "space"), f"run '{body.run}' was trained on space '{p.space.name}'",
                                 allowed=[p.space.name])
            df = p.predict(codes)
        except UnknownNameError:
            raise  # the device's name itself: its 422 lists the known devices
        except NasError as exc:
            about_run = run_dir is not None and (isinstance(exc, CheckpointError) or "accuracy" in str(exc))
            loc = ("body", "run") if about_run else ("body", "devices", j)
            raise FieldError(loc, f"device '{device}': {exc}", type_=type(exc).__name__) from None
        sources[device] = p.latency_source
        has_acc = "accuracy" in df.columns
        for i, r in enumerate(df.to_dict("records")):
            rows.append(Prediction(
                arch_index=i, device=device, latency_ms=r["latency_ms"], macs=int(r["macs"]), params=int(r["params"]),
                sram_bytes=r["sram_bytes"], flash_bytes=r["flash_bytes"], fits=bool(r["fits"]),
                accuracy=_num(r["accuracy"]) if has_acc else None,
                accuracy_std=_num(r.get("accuracy_std")) if has_acc else None))
    return PredictResponse(space=space.name, run=body.run, latency_source=sources, predictions=rows)


def encode_archs(space: SearchSpace, archs: list[ArchIn]) -> np.ndarray:
    """Compact codes of request archs (`SearchSpace.codes`, vectorised); an arch that does not fit the space is
    named by its index and field."""
    try:
        return space.codes([a.model_dump() for a in archs])
    except InvalidArchError as exc:
        raise FieldError(("body", "archs", *exc.loc), str(exc), type_="invalid_arch") from None


def _num(v: object) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

