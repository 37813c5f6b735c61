"""`Predictors`: every figure a search needs for one space on one device, for many archs at once.

    p = Predictors("tiny-mbv3", "stm32f746")
    df = p.predict(space.sample_codes(10_000, 0))   # macs, params, latency_ms, sram_bytes, flash_bytes, fits

Latency comes from the best model the device's profile supports: a measured lookup table (with the learned model
for ops it lacks), else a learned model (fitted from measurements), else the roofline of the spec sheet (CPU,
GPU) or the MCU cost model. On an MCU, sram_bytes/flash_bytes are int8 peak SRAM and Flash; elsewhere they are
the fp32 (or the profile's dtype) peak activation memory at the profile's batch size and the weights' size, and
`fits` checks them against the device memory when the profile states it.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from hw_profiles import DeviceProfile, load_profile
from supernet import ArchConfig, SearchSpace
from supernet.counting import layer_macs, layer_params, peak_bytes

from predictors.base import PredictorBase, PredictorError
from predictors.learned import LearnedLatency
from predictors.lookup import LookupTableLatency
from predictors.mcu import McuCostModel
from predictors.ops import Op, OpTables
from predictors.roofline import RooflineLatency

_BYTES = {"fp32": 4, "fp16": 2, "int8": 1}


def correction_key(space: SearchSpace | str, kind: str) -> str:
    """Key of a space's end-to-end correction for one predictor kind in a profile (`tiny-mbv3:lookup-table`)."""
    return f"{space if isinstance(space, str) else space.name}:{kind}"


def latency_predictor(space: SearchSpace, profile: DeviceProfile | str) -> PredictorBase:
    """The most calibrated latency predictor `profile` supports for `space`."""
    prof = load_profile(profile)
    lat = prof.latency
    if lat.lookup_table is not None and lat.lookup_table.tables:
        fallback = LearnedLatency.from_model(space, lat.learned) if lat.learned is not None else None
        return LookupTableLatency(space, lat.lookup_table.tables, fallback=fallback,
                                  correction=lat.corrections.get(correction_key(space, "lookup-table")))
    if lat.learned is not None:
        return LearnedLatency.from_model(space, lat.learned, lat.corrections.get(correction_key(space, "learned")))
    if prof.kind == "mcu":
        return McuCostModel.from_profile(space, prof)
    return RooflineLatency.from_profile(space, prof)


class Predictors:
    """MACs, params, latency, memory and fit (and accuracy, when attached) of archs of `space` on `device`."""

    def __init__(self, space: SearchSpace | str, device: DeviceProfile | str, accuracy: Any = None):
        self.space = space if isinstance(space, SearchSpace) else SearchSpace.preset(space)
        self.profile = load_profile(device)
        self.device = self.profile.name
        self.latency = latency_predictor(self.space, self.profile)
        self.mcu = None
        if self.profile.kind == "mcu":
            self.mcu = self.latency if isinstance(self.latency, McuCostModel) else \
                McuCostModel.from_profile(self.space, self.profile)
        self.accuracy = accuracy
        # MACs, params (sums) and peak activation bytes at batch 1 (max), as supernet.counting counts them
        bpe = 1 if self.profile.latency.dtype == "int8" else 4
        if self.mcu is not None:  # the MCU model gives its own peak SRAM
            self._counts = OpTables(self.space, lambda op: _counts(op, bpe)[:2], 2)
        else:
            self._counts = OpTables(self.space, lambda op: _counts(op, bpe), 3, reduce=("sum", "sum", "max"))

    @property
    def latency_source(self) -> str:
        """Which model gives latency_ms: lookup-table, learned, roofline or mcu."""
        return self.latency.kind

    @property
    def calibrated(self) -> bool:
        """False while latency comes from spec-like defaults only (e.g. an unmeasured cpu-host)."""
        return self.profile.state != "unmeasured" or self.latency.kind in ("lookup-table", "learned")

    @classmethod
    def for_run(cls, run_dir: str | Path, device: DeviceProfile | str) -> "Predictors":
        """Predictors for a trained run's space, with the run's fitted accuracy predictor attached."""
        from supernet.run import read_run_info

        run = Path(run_dir)
        info = read_run_info(run)
        space = SearchSpace.from_dict(info.space)
        try:
            from predictors.accuracy import load_accuracy_predictor
        except ImportError as exc:
            raise PredictorError(f"no accuracy predictor is available in this install ({exc}); "
                                 "fit one with `nas accuracy fit` once it exists") from None
        return cls(space, device, accuracy=load_accuracy_predictor(run, info.checkpoint_hash))

    def codes(self, archs: Sequence[ArchConfig] | Sequence[dict] | np.ndarray | ArchConfig) -> np.ndarray:
        return self.space.codes(archs)

    def predict(self, archs: Sequence[ArchConfig] | np.ndarray | ArchConfig,
                columns: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per arch: macs, params, latency_ms, sram_bytes, flash_bytes, fits (+ margins on MCUs,
        + accuracy, accuracy_std with an accuracy predictor). `columns`: the ones wanted (others may come
        too): without accuracy among them the accuracy predictor is not run; with only latency and accuracy,
        nothing is counted."""
        df = pd.DataFrame(self.predict_columns(archs, columns))
        if "fits" in df:
            df["fits"] = df["fits"].astype(bool)
        return df

    def predict_columns(self, archs: Sequence[ArchConfig] | np.ndarray | ArchConfig,
                        columns: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """`predict` as a dict of arrays (no DataFrame: a search's inner loop reads a column or two)."""
        codes = self.codes(archs)
        wanted = None if columns is None else set(columns)
        cols: dict[str, Any] = {}
        if self.mcu is None and wanted is not None and wanted <= {"latency_ms", "accuracy", "accuracy_std"}:
            if "latency_ms" in wanted:  # a search screening by latency, or scoring accuracy: no counting
                cols["latency_ms"] = self.latency.predict(codes)
        else:
            counts = self._counts(codes)
            cols.update(macs=counts[:, 0], params=counts[:, 1])
            if self.mcu is not None:
                ev = self.mcu.evaluate(codes)
                cols["latency_ms"] = ev[:, 0] if self.latency is self.mcu else self.latency.predict(codes)
                mem = self.mcu.memory(codes, ev)
                for key in ("sram_bytes", "flash_bytes", "fits", "sram_margin_bytes", "flash_margin_bytes"):
                    cols[key] = mem[key]
            else:
                cols["latency_ms"] = self.latency.predict(codes)
                dtype = self.profile.latency.dtype
                act = counts[:, 2] * (_BYTES[dtype] / (1 if dtype == "int8" else 4))
                sram = act * self.profile.latency.batch_size
                flash = cols["params"] * _BYTES[self.profile.latency.dtype]
                cols["sram_bytes"], cols["flash_bytes"] = sram, flash
                if self.profile.has("memory"):
                    cols["fits"] = (sram + flash) <= self.profile.figure("memory")
                else:
                    cols["fits"] = np.ones(len(codes), dtype=bool)
        if self.accuracy is not None and (columns is None or {"accuracy", "accuracy_std"} & set(columns)):
            mean, std = _accuracy(self.accuracy, codes)
            cols["accuracy"], cols["accuracy_std"] = mean, std
        return cols


def _counts(op: Op, bytes_per_elem: int) -> np.ndarray:
    layers = list(op.layers)
    return np.array([sum(map(layer_macs, layers)), sum(map(layer_params, layers)),
                     peak_bytes(layers, bytes_per_elem)])


@functools.lru_cache(maxsize=64)
def _takes_return_std(cls: type) -> bool:
    return "return_std" in inspect.signature(cls.predict).parameters


def _accuracy(predictor: Any, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) from an accuracy predictor, whichever way it reports uncertainty."""
    if hasattr(predictor, "predict_with_std"):
        mean, std = predictor.predict_with_std(codes)
    elif _takes_return_std(type(predictor)):
        mean, std = predictor.predict(codes, return_std=True)
    else:
        out = predictor.predict(codes)
        mean, std = out if isinstance(out, tuple) else (out, np.full(len(codes), np.nan))
    return np.asarray(mean, float), np.asarray(std, float)
