"""`nas predict`: latency, MACs, params (and MCU memory, accuracy) of archs from a JSON-lines file."""

from __future__ import annotations

import math

import typer

from nas.cli._common import emit, read_archs
from predictors import Predictors, PredictorError
from supernet import SearchSpace


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)


def predict(space: str = typer.Option(..., "--space", help="space name or YAML"),
            device: str = typer.Option(None, "--device", help="device name (`nas devices`)"),
            profile: str = typer.Option(None, "--profile", help="device profile YAML"),
            archs: str = typer.Option(..., "--archs", help="archs: JSON lines (or a JSON list) with ks, e, d, r"),
            run: str = typer.Option(None, "--run", help="training run folder: adds predicted accuracy"),
            server: str = typer.Option(None, "--server", help="a `nas serve` URL: run there (token from $NAS_API_TOKEN)")) -> None:
    """Print one JSON object per arch: latency_ms, macs, params; on MCUs also sram_bytes, flash_bytes, fits."""
    if server:
        from nas.service.client import remote_predict

        if device is None:
            raise PredictorError("with --server give --device NAME (a device the server knows)")
        for row in remote_predict(server, space, device, archs, run):
            emit(row)
        return
    if (device is None) == (profile is None):
        raise PredictorError("give exactly one of --device NAME or --profile FILE")
    dev = device or profile
    if run:
        p = Predictors.for_run(run, dev)
        if space not in (p.space.name,):
            sp = SearchSpace.preset(space)
            if sp.to_dict() != p.space.to_dict():
                raise PredictorError(f"--space '{space}' is not the space of run '{run}' ('{p.space.name}')")
    else:
        p = Predictors(space, dev)
    if not p.calibrated:
        typer.echo(f"warning: device '{p.device}' is unmeasured; latency is a spec-like roofline estimate "
                   "(run `nas profile cpu-host --space SPACE` to measure it)", err=True)
    items = read_archs(p.space, archs)
    df = p.predict(items)
    cols = ["latency_ms", "macs", "params"]
    if p.profile.kind == "mcu":
        cols += ["sram_bytes", "flash_bytes", "sram_margin_bytes", "flash_margin_bytes", "fits"]
    cols += [c for c in ("accuracy", "accuracy_std") if c in df.columns]
    for arch, row in zip(items, df[cols].to_dict("records")):
        out = {"arch": arch.to_dict(), "device": p.device, "latency_source": p.latency_source}
        for c in cols:
            v = row[c]
            out[c] = (bool(v) if c == "fits" else int(v) if c in ("macs", "params") or c.endswith("_bytes")
                      else None if isinstance(v, float) and math.isnan(v) else float(v))
        emit(out)
