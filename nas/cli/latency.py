"""`nas latency fit|import-ofa|export-ofa`: calibrate a device's latency from measurements made anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import typer

from hw_profiles import DeviceProfile, load_profile, parse_specs, save_profile, start_profile, user_profiles_dir
from hw_profiles.schema import Fidelity, LookupTable
from nas.cli._common import emit
from predictors.api import correction_key
from predictors.base import PredictorError
from predictors.learned import LearnedLatency
from predictors.lookup import LookupTableLatency, read_ofa_tables, write_ofa_tables
from predictors.ops import space_ops
from supernet import SearchSpace
from supernet.errors import InvalidArchError

app = typer.Typer(help="Fit a device's latency model from your measurements, or import/export OFA lookup tables.",
                  no_args_is_help=True)


def read_measurements(space: SearchSpace, path: str) -> tuple[np.ndarray, np.ndarray]:
    """(codes, latency_ms) from a CSV with columns `arch` (JSON with ks, e, d, r) and `latency_ms`."""
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise PredictorError(f"measurements file '{path}' does not exist") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PredictorError(f"{path}: not a readable CSV: {exc}") from None
    missing = [c for c in ("arch", "latency_ms") if c not in df.columns]
    if missing:
        raise PredictorError(f"{path}: missing column(s) {', '.join(missing)}; need 'arch' (JSON with ks, e, d, r) "
                             f"and 'latency_ms'; found {', '.join(map(str, df.columns))}")
    archs, lat = [], []
    for i, row in enumerate(df.itertuples(index=False), start=2):
        try:
            archs.append(space.arch_from_dict(json.loads(row.arch)))
        except (json.JSONDecodeError, TypeError) as exc:
            raise PredictorError(f"{path} line {i}: column 'arch' is not JSON: {exc}") from None
        except InvalidArchError as exc:
            raise PredictorError(f"{path} line {i}: {exc}") from None
        try:
            v = float(row.latency_ms)
        except (TypeError, ValueError):
            raise PredictorError(f"{path} line {i}: latency_ms must be a number in ms, got {row.latency_ms!r}") from None
        if not np.isfinite(v) or v <= 0:
            raise PredictorError(f"{path} line {i}: latency_ms must be a positive number of ms, got {v}")
        lat.append(v)
    if len(archs) < 10:
        raise PredictorError(f"{path}: need at least 10 measured archs to fit and cross-validate, got {len(archs)}")
    return space.encode(archs), np.asarray(lat)


_DEVICE_HELP = "the device: a known profile to recalibrate, or a NEW name (with --kind and/or --base)"
_KIND_HELP = "a new device's kind: cpu, gpu or mcu (default: the --base profile's)"
_BASE_HELP = "a known profile whose spec figures a new device starts from"
_SPEC_HELP = "a spec figure, FIGURE=VALUE[UNIT] (e.g. sram=256KB; repeatable); an MCU needs sram and flash"
_OUT_HELP = "profile YAML to write (default runs/profiles/DEVICE.yaml, where `--device DEVICE` then finds it)"


def _start(device: str, kind: str | None, base: str | None, spec: list[str] | None) -> tuple[DeviceProfile, bool]:
    return start_profile(device, kind, base, parse_specs(spec or []))


def _save(prof: DeviceProfile, out: str | None) -> Path:
    return save_profile(prof, out or user_profiles_dir() / f"{prof.name}.yaml")


def _provenance(prof: DeviceProfile, new: bool) -> dict:
    """Where each figure came from, for the CLI's answer."""
    figs = {**prof.specs, **prof.mcu}
    return {"new_device": new, "base": prof.base,
            "figures": {src: sorted(n for n, f in figs.items() if f.source == src)
                        for src in sorted({f.source for f in figs.values()})}}


@app.command("fit")
def fit(space: str = typer.Option(..., "--space"), device: str = typer.Option(..., "--device", help=_DEVICE_HELP),
        measurements: str = typer.Option(..., "--measurements", help="CSV with columns arch (JSON), latency_ms"),
        out: str = typer.Option(None, "--out", help=_OUT_HELP),
        kind: str = typer.Option(None, "--kind", help=_KIND_HELP),
        base: str = typer.Option(None, "--base", help=_BASE_HELP),
        spec: list[str] = typer.Option(None, "--spec", help=_SPEC_HELP),
        folds: int = typer.Option(5, "--folds", min=2), seed: int = typer.Option(0, "--seed")) -> None:
    """Fit DEVICE's learned latency model from whole-subnet measurements; report cross-validated fidelity."""
    sp = SearchSpace.preset(space)
    start, new = _start(device, kind, base, spec)
    codes, y = read_measurements(sp, measurements)
    cv = LearnedLatency(sp).cross_validate(codes, y, folds=folds, seed=seed)
    model = LearnedLatency(sp).fit(codes, y)
    lat = start.latency.model_copy(deep=True)
    lat.lookup_table = None  # the fitted model now speaks for this device; a table from elsewhere would not
    lat.learned = model.to_model(note=f"fitted on {len(y)} whole subnets of {sp.name} from {measurements}")
    lat.corrections = {correction_key(sp, "learned"): model.correction}
    lat.fidelity[sp.name] = [Fidelity(predictor="learned", n=cv["n"], source="fitted",
                                      **{k: round(cv[k], 5) for k in ("spearman", "kendall", "rmse", "mape",
                                                                      "within_10pct")})]
    lat.warnings.pop(sp.name, None)
    prof = start.model_copy(update={"latency": lat, "state": "fitted"})
    path = _save(prof, out)
    emit({"profile": str(path), "device": prof.name, "kind": prof.kind, "space": sp.name, "measurements": len(y),
          "cross_validated": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in cv.items()},
          **_provenance(prof, new)})


@app.command("import-ofa")
def import_ofa(lut: str = typer.Option(..., "--lut", help="folder of OFA <resolution>_lookup_table.yaml files"),
               space: str = typer.Option(..., "--space"),
               device: str = typer.Option(..., "--device", help=_DEVICE_HELP),
               out: str = typer.Option(None, "--out", help=_OUT_HELP),
               kind: str = typer.Option(None, "--kind", help=_KIND_HELP),
               base: str = typer.Option(None, "--base", help=_BASE_HELP),
               spec: list[str] = typer.Option(None, "--spec", help=_SPEC_HELP)) -> None:
    """Import OFA lookup tables as DEVICE's measured table (a learned model, fitted on them, covers gaps)."""
    sp = SearchSpace.preset(space)
    start, new = _start(device, kind, base, spec)
    tables = read_ofa_tables(lut)
    lat = start.latency.model_copy(deep=True)
    lat.lookup_table = LookupTable(source="imported", tables=tables)
    known = {op.key: op for ops in space_ops(sp, sorted(tables)).values() for op in ops}
    matched = [(known[k], e.mean) for t in tables.values() for k, e in t.items() if k in known]
    if len(matched) >= 4:
        learned = LearnedLatency(sp).fit_ops([m[0] for m in matched], np.array([m[1] for m in matched]))
        lat.learned = learned.to_model(source="fitted", note=f"fitted on {len(matched)} imported OFA table entries")
    missing = LookupTableLatency(sp, tables).missing(sorted(tables))
    prof = start.model_copy(update={"latency": lat, "state": "imported"})
    path = _save(prof, out)
    emit({"profile": str(path), "device": prof.name, "kind": prof.kind, "space": sp.name,
          "entries": {str(r): len(t) for r, t in sorted(tables.items())}, "matched_space_ops": len(matched),
          "missing": {str(r): len(v) for r, v in missing.items()}, "learned_fallback": lat.learned is not None,
          **_provenance(prof, new)})


@app.command("export-ofa")
def export_ofa(device: str = typer.Option(..., "--device", help="device name or profile YAML"),
               out: str = typer.Option(..., "--out", help="folder for <resolution>_lookup_table.yaml files")) -> None:
    """Write DEVICE's measured lookup table in OFA's format, one file per resolution."""
    prof = load_profile(device)
    if prof.latency.lookup_table is None or not prof.latency.lookup_table.tables:
        raise PredictorError(f"device '{prof.name}' has no lookup table; measure one with `nas profile`")
    paths = write_ofa_tables(prof.latency.lookup_table.tables, out)
    emit({"device": prof.name, "files": [str(p) for p in paths]})
