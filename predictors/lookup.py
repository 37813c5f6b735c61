"""LookupTableLatency: per-op latencies measured on the device, keyed by op and shape, summed per subnet.

Reads and writes once-for-all's own table format, so tables measured on phones with OFA's tooling work here:
a folder of `<resolution>_lookup_table.yaml` files, each mapping keys like
`expanded_conv-input:112x112x24-output:56x56x32-expand:144-kernel:3-stride:2-idskip:0-se:0-hs:0` (and `Conv`,
`Conv_1`, `AvgPool2D`, `Conv_2`, `Logits`) to `{mean, std, count}` in milliseconds.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from hw_profiles.schema import Correction, LutEntry
from supernet._io import read_yaml
from supernet import SearchSpace

from predictors.base import PredictorBase, PredictorError, register_predictor, write_yaml
from predictors.calibration import apply_correction, fit_correction
from predictors.learned import LearnedLatency
from predictors.ops import Op, active_blocks, scalar_tables, space_ops

Tables = dict[int, dict[str, LutEntry]]
_FILE = re.compile(r"^(\d+)_lookup_table\.ya?ml$")
# OFA's own tables may lack pooling (its MobileNetV3 predictor queries it; older tables have no entry): ~free.
_OPTIONAL_TYPES = ("AvgPool2D",)


@register_predictor("lookup-table")
class LookupTableLatency(PredictorBase):
    """Sum of per-op table latencies (ms); ops missing from the table come from `fallback` if given."""

    def __init__(self, space: SearchSpace, tables: Tables, fallback: LearnedLatency | None = None,
                 correction: Correction | None = None):
        self.space, self.tables, self.fallback, self.correction = space, {int(r): t for r, t in tables.items()}, \
            fallback, correction
        # Keys carry their shapes, so one merged dict serves every resolution (1x1 head ops recur across files).
        self._merged = {k: v.mean for r in sorted(self.tables, reverse=True) for k, v in self.tables[r].items()}
        self._sums = scalar_tables(space, self.op_ms)

    def op_ms(self, op: Op) -> float:
        """The op's table latency at its subnet's resolution, else the same key measured at another one."""
        own = self.tables.get(op.r)
        if own is not None and op.key in own:
            return own[op.key].mean
        if op.key in self._merged:
            return self._merged[op.key]
        if self.fallback is not None:
            return self.fallback.op_ms(op)
        if op.type in _OPTIONAL_TYPES:
            return 0.0
        raise PredictorError(f"lookup table has no entry '{op.key}' (measured resolutions: "
                             f"{sorted(self.tables) or 'none'}); measure it or attach a learned fallback")

    def ops_ms(self, codes: np.ndarray) -> np.ndarray:
        return self._sums(codes)[:, 0]

    def predict(self, codes: np.ndarray) -> np.ndarray:
        """Latency in ms (sum of table ops, then the end-to-end correction if fitted)."""
        return apply_correction(self.correction, self.ops_ms(codes), active_blocks(self.space, codes))

    def fit(self, codes: np.ndarray, measured_ms: np.ndarray) -> "LookupTableLatency":
        """Fit the end-to-end correction on whole measured subnets (the table itself is measured, not fitted)."""
        self.correction = fit_correction(self.ops_ms(codes), measured_ms)
        return self

    def missing(self, resolutions: list[int] | None = None) -> dict[int, list[str]]:
        """Keys the space needs at each resolution that the table lacks."""
        out = {}
        for r, ops in space_ops(self.space, resolutions).items():
            lacking = [op.key for op in ops if op.type not in _OPTIONAL_TYPES
                       and op.key not in self._merged]
            if lacking:
                out[r] = lacking
        return out

    # ------------------------------------------------------------------ OFA format
    @classmethod
    def from_ofa(cls, space: SearchSpace, lut_dir: str | Path, **kw: Any) -> "LookupTableLatency":
        return cls(space, read_ofa_tables(lut_dir), **kw)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tables": tables_to_plain(self.tables)}
        if self.fallback is not None:
            out["fallback"] = self.fallback.to_dict()
        if self.correction is not None:
            out["correction"] = self.correction.model_dump(mode="json")
        return out

    @classmethod
    def from_dict(cls, space: SearchSpace, data: dict[str, Any]) -> "LookupTableLatency":
        fb = LearnedLatency.from_dict(space, data["fallback"]) if data.get("fallback") else None
        corr = Correction.model_validate(data["correction"]) if data.get("correction") else None
        return cls(space, parse_tables(data.get("tables", {}), "tables"), fallback=fb, correction=corr)


def tables_to_plain(tables: Tables) -> dict[int, dict[str, dict[str, float]]]:
    return {int(r): {k: {"count": int(v.count), "mean": float(v.mean), "std": float(v.std)}
                     for k, v in sorted(t.items())} for r, t in sorted(tables.items())}


def parse_tables(data: Any, where: str) -> Tables:
    if not isinstance(data, dict):
        raise PredictorError(f"{where}: lookup tables must map resolution -> {{op key: {{mean, std, count}}}}")
    out: Tables = {}
    for r, table in data.items():
        out[int(r)] = _parse_table(table, f"{where}[{r}]")
    return out


def _parse_table(table: Any, where: str) -> dict[str, LutEntry]:
    if not isinstance(table, dict):
        raise PredictorError(f"{where}: a lookup table must map op keys to {{mean, std, count}}")
    out = {}
    for key, entry in table.items():
        if not isinstance(key, str) or "-input:" not in key:
            raise PredictorError(f"{where}: '{key}' is not an OFA op key (like 'Conv-input:224x224x3-output:112x112x16')")
        try:
            out[key] = LutEntry.model_validate(entry)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise PredictorError(f"{where}: entry '{key}' field '{field}': {first['msg']} "
                                 "(entries are {mean: ms, std: ms, count: runs})") from None
    return out


def read_ofa_tables(lut_dir: str | Path) -> Tables:
    """OFA's `<resolution>_lookup_table.yaml` files in `lut_dir` -> {resolution: {key: LutEntry}}."""
    d = Path(lut_dir)
    if not d.is_dir():
        raise PredictorError(f"lookup-table folder '{lut_dir}' does not exist")
    tables: Tables = {}
    for path in sorted(d.iterdir()):
        m = _FILE.match(path.name)
        if not m:
            continue
        data = read_yaml(path, PredictorError, "lookup table")
        tables[int(m.group(1))] = _parse_table(data or {}, str(path))
    if not tables:
        raise PredictorError(f"no '<resolution>_lookup_table.yaml' files in '{lut_dir}' (OFA's table format)")
    return tables


def write_ofa_tables(tables: Tables, out_dir: str | Path) -> list[Path]:
    """Write one `<resolution>_lookup_table.yaml` per resolution in OFA's format (each file whole)."""
    return [write_yaml(Path(out_dir) / f"{r}_lookup_table.yaml", t)
            for r, t in tables_to_plain(tables).items()]
