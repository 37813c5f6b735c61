"""RooflineLatency: latency from a device's spec sheet, per layer max(compute time, memory time) + launch overhead."""

from __future__ import annotations

from typing import Any

import numpy as np

from hw_profiles import DeviceProfile, load_profile
from supernet import SearchSpace

from predictors.base import PredictorBase, PredictorError, register_predictor
from predictors.ops import Op, scalar_tables

_BYTES = {"fp32": 4, "fp16": 2, "int8": 1}


@register_predictor("roofline")
class RooflineLatency(PredictorBase):
    """Per layer: max(2·MACs·batch / (peak·compute_efficiency), bytes moved / (bandwidth·memory_efficiency))
    + one kernel launch; summed over the subnet's layers. Milliseconds per batch of `batch_size` images."""

    def __init__(self, space: SearchSpace, *, peak_tflops: float, bandwidth_gbs: float, launch_us: float = 0.0,
                 compute_efficiency: float = 1.0, memory_efficiency: float = 1.0, batch_size: int = 1,
                 dtype: str = "fp32", device: str = ""):
        if peak_tflops <= 0 or bandwidth_gbs <= 0:
            raise PredictorError("roofline needs peak throughput and memory bandwidth > 0")
        if dtype not in _BYTES:
            raise PredictorError(f"dtype must be one of {', '.join(_BYTES)}, got {dtype!r}")
        self.space, self.device = space, device
        self.peak_tflops, self.bandwidth_gbs, self.launch_us = peak_tflops, bandwidth_gbs, launch_us
        self.compute_efficiency, self.memory_efficiency = compute_efficiency, memory_efficiency
        self.batch_size, self.dtype = int(batch_size), dtype
        self._tables = scalar_tables(space, self.op_ms)

    @classmethod
    def from_profile(cls, space: SearchSpace, profile: DeviceProfile | str, batch_size: int | None = None
                     ) -> "RooflineLatency":
        prof = load_profile(profile)
        dtype = prof.latency.dtype
        peak_name = "peak_fp16" if dtype in ("fp16", "int8") and prof.has("peak_fp16") else "peak_fp32"
        for need in (peak_name, "memory_bandwidth"):
            if not prof.has(need):
                raise PredictorError(f"device '{prof.name}' needs specs.{need} for a roofline latency model")
        get = lambda n, d: prof.figure(n) if prof.has(n) else d  # noqa: E731
        return cls(space, peak_tflops=prof.figure(peak_name), bandwidth_gbs=prof.figure("memory_bandwidth"),
                   launch_us=get("launch_overhead", 0.0), compute_efficiency=get("compute_efficiency", 1.0),
                   memory_efficiency=get("memory_efficiency", 1.0),
                   batch_size=batch_size or prof.latency.batch_size, dtype=dtype, device=prof.name)

    def layer_ms(self, layer) -> float:  # noqa: ANN001
        b, bpe = self.batch_size, _BYTES[self.dtype]
        macs = 0.0 if layer.kind == "pool" else float(layer.macs)
        flops = 2.0 * macs * b
        moved = (layer.in_elems + layer.out_elems + (layer.residual if layer.kind == "project" else 0)) * b * bpe \
            + layer.weight_params * bpe
        t_compute = flops / (self.peak_tflops * 1e12 * self.compute_efficiency)
        t_memory = moved / (self.bandwidth_gbs * 1e9 * self.memory_efficiency)
        return 1e3 * max(t_compute, t_memory) + self.launch_us * 1e-3

    def op_ms(self, op: Op) -> float:
        return float(sum(self.layer_ms(layer) for layer in op.layers))

    def predict(self, codes: np.ndarray) -> np.ndarray:
        """Latency in ms per batch of `batch_size` images."""
        return self._tables(codes)[:, 0]

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "peak_tflops": self.peak_tflops, "bandwidth_gbs": self.bandwidth_gbs,
                "launch_us": self.launch_us, "compute_efficiency": self.compute_efficiency,
                "memory_efficiency": self.memory_efficiency, "batch_size": self.batch_size, "dtype": self.dtype}

    @classmethod
    def from_dict(cls, space: SearchSpace, data: dict[str, Any]) -> "RooflineLatency":
        return cls(space, **data)
