"""McuCostModel: int8 inference on a microcontroller: latency, peak SRAM, Flash and a fits verdict.

Latency: per layer MACs × cycles-per-MAC of its op type (conv, pointwise, depthwise, linear) plus a per-layer
overhead, at the device clock. SRAM and Flash are those of the C code `nas export` generates (see
`predictors.mcu_memory`): SRAM is its static arena (MCUNet/TinyEngine's plan: a layer's input and output alive
at once, a block input kept for its residual add, depthwise computed in place) plus the depthwise scratch plane
plus the runtime's stack; Flash is every constant array (int8 weights; int32 bias, multiplier and int8 shift per
output channel; activation tables; op descriptors) plus the kernels' code.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hw_profiles import DeviceProfile, load_profile
from supernet import SearchSpace
from supernet.counting import Layer

from predictors.base import PredictorBase, PredictorError, register_predictor
from predictors.mcu_memory import block_arena_bytes, layer_flash_bytes, scratch_bytes
from predictors.ops import Op, OpTables

_OP_TYPE = {"conv": "conv", "expand": "pointwise", "project": "pointwise", "se": "pointwise", "mix": "pointwise",
            "depthwise": "depthwise", "linear": "linear"}
CYCLE_FIGURES = ("cycles_per_mac_conv", "cycles_per_mac_pointwise", "cycles_per_mac_depthwise",
                 "cycles_per_mac_linear", "cycles_per_elem_pool", "layer_overhead")


def sram_peak_bytes(layers: list[Layer]) -> float:
    """Peak int8 activation bytes over `layers` (one block) with in-place depthwise, as the generated arena holds them."""
    return float(block_arena_bytes(layers))


@register_predictor("mcu")
class McuCostModel(PredictorBase):
    """Latency (ms), peak SRAM (B), Flash (B) and fits/margins of int8 subnets on one MCU."""

    def __init__(self, space: SearchSpace, *, clock_mhz: float, sram_bytes: float, flash_bytes: float,
                 cycles: dict[str, float], sram_runtime_bytes: float = 0.0, flash_runtime_bytes: float = 0.0,
                 device: str = ""):
        missing = [c for c in CYCLE_FIGURES if c not in cycles]
        if missing:
            raise PredictorError(f"MCU cost model needs mcu.{', mcu.'.join(missing)}")
        if clock_mhz <= 0:
            raise PredictorError("MCU clock must be > 0 MHz")
        self.space, self.device = space, device
        self.clock_mhz, self.sram_bytes, self.flash_bytes = clock_mhz, sram_bytes, flash_bytes
        self.cycles = {k: float(cycles[k]) for k in CYCLE_FIGURES}
        self.sram_runtime_bytes, self.flash_runtime_bytes = sram_runtime_bytes, flash_runtime_bytes
        # latency (sum over ops), arena (max over ops), Flash (sum), depthwise scratch (max): one gather per batch
        self._tables = OpTables(space, self._op_costs, 4, reduce=("sum", "max", "sum", "max"))

    @classmethod
    def from_profile(cls, space: SearchSpace, profile: DeviceProfile | str) -> "McuCostModel":
        prof = load_profile(profile)
        if prof.kind != "mcu":
            raise PredictorError(f"device '{prof.name}' is a {prof.kind}, not an mcu")
        missing = [c for c in CYCLE_FIGURES if not prof.has(c)]
        if missing:
            raise PredictorError(f"device '{prof.name}' ({prof.path}) lacks mcu.{', mcu.'.join(missing)}")
        get = lambda n: prof.figure(n) if prof.has(n) else 0.0  # noqa: E731
        return cls(space, clock_mhz=prof.figure("clock"), sram_bytes=prof.figure("sram"),
                   flash_bytes=prof.figure("flash"), cycles={c: prof.figure(c) for c in CYCLE_FIGURES},
                   sram_runtime_bytes=get("sram_runtime"), flash_runtime_bytes=get("flash_runtime"), device=prof.name)

    def layer_cycles(self, layer: Layer) -> float:
        c = self.cycles
        if layer.kind == "pool":
            work = layer.in_elems * c["cycles_per_elem_pool"]
        else:
            work = layer.macs * c[f"cycles_per_mac_{_OP_TYPE[layer.kind]}"]
        return work + c["layer_overhead"]

    def _op_costs(self, op: Op) -> np.ndarray:
        layers = list(op.layers)
        return np.array([sum(map(self.layer_cycles, layers)) / (self.clock_mhz * 1e3), sram_peak_bytes(layers),
                         float(sum(map(layer_flash_bytes, layers))), float(scratch_bytes(layers))])

    def evaluate(self, codes: np.ndarray) -> np.ndarray:
        """(N, 3): latency ms, peak SRAM bytes (arena + scratch + runtime), Flash bytes (runtime included)."""
        t = self._tables(codes)
        out = t[:, :3].copy()
        out[:, 1] += t[:, 3] + self.sram_runtime_bytes
        out[:, 2] += self.flash_runtime_bytes
        return out

    def arena_bytes(self, codes: np.ndarray) -> np.ndarray:
        """The generated code's activation arena in bytes (without the scratch plane and the runtime)."""
        return self._tables(codes)[:, 1]

    def predict(self, codes: np.ndarray) -> np.ndarray:
        """Latency in ms at the device clock."""
        return self._tables(codes)[:, 0]

    def sram(self, codes: np.ndarray) -> np.ndarray:
        """Peak SRAM in bytes: the int8 arena (in-place depthwise, kept residuals) + scratch plane + runtime."""
        return self.evaluate(codes)[:, 1]

    def flash(self, codes: np.ndarray) -> np.ndarray:
        """Flash in bytes: weights, per-channel biases and requantization, tables, op descriptors + runtime code."""
        return self.evaluate(codes)[:, 2]

    def memory(self, codes: np.ndarray, evaluated: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """sram_bytes, flash_bytes, their margins (capacity minus need; negative when over) and the fits verdict."""
        ev = self.evaluate(codes) if evaluated is None else evaluated
        sram, flash = ev[:, 1], ev[:, 2]
        sm, fm = self.sram_bytes - sram, self.flash_bytes - flash
        return {"sram_bytes": sram, "flash_bytes": flash, "sram_margin_bytes": sm, "flash_margin_bytes": fm,
                "fits": (sm >= 0) & (fm >= 0)}

    def fit(self, codes: np.ndarray, measured: np.ndarray) -> "McuCostModel":
        """Scale the cycles-per-MAC figures by one factor so predictions match measured latencies (least squares)."""
        pred = self.predict(codes)
        m = np.asarray(measured, dtype=float)
        scale = float(pred @ m / (pred @ pred))
        if not np.isfinite(scale) or scale <= 0:
            raise PredictorError("cannot fit the MCU cost model to these measurements")
        self.__init__(self.space, clock_mhz=self.clock_mhz, sram_bytes=self.sram_bytes, flash_bytes=self.flash_bytes,
                      cycles={k: v * scale for k, v in self.cycles.items()},
                      sram_runtime_bytes=self.sram_runtime_bytes, flash_runtime_bytes=self.flash_runtime_bytes,
                      device=self.device)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "clock_mhz": self.clock_mhz, "sram_bytes": self.sram_bytes,
                "flash_bytes": self.flash_bytes, "cycles": dict(self.cycles),
                "sram_runtime_bytes": self.sram_runtime_bytes, "flash_runtime_bytes": self.flash_runtime_bytes}

    @classmethod
    def from_dict(cls, space: SearchSpace, data: dict[str, Any]) -> "McuCostModel":
        return cls(space, **data)
