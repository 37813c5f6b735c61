"""DeviceProfile: a device as data (spec-sheet figures, measured tables, fitted coefficients), validated by pydantic.

Every figure carries its unit and its source (`spec-sheet`, `measured`, `fitted`, `imported`, or `defaulted`: a
placeholder a new device was given because nobody stated it). Units are checked
against what the field means (a bandwidth must be a bandwidth) and converted to the field's canonical unit, so
`sram: {value: 320, unit: KB}` and `sram: {value: 327680, unit: B}` are the same figure.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from supernet.errors import NasError

SOURCES = ("spec-sheet", "measured", "fitted", "imported", "defaulted")
Source = Literal["spec-sheet", "measured", "fitted", "imported", "defaulted"]
KINDS = ("cpu", "gpu", "mcu")


class ProfileError(NasError):
    """A device profile is unknown, malformed, or lacks a figure a predictor needs; `field` names the input at
    fault where one is (name, kind, base, spec) so the API can point at it."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message, loc=() if field is None else (field,))

    @property
    def field(self) -> str | None:
        return str(self.loc[0]) if self.loc else None


# dimension -> (canonical unit, {accepted unit: factor to canonical}). Memory sizes follow the JEDEC/datasheet
# convention (KB = 1024 B), as MCU and GPU spec sheets do; bandwidth and throughput are decimal.
_DIMENSIONS: dict[str, tuple[str, dict[str, float]]] = {
    "bytes": ("B", {"B": 1, "KB": 1024, "KiB": 1024, "MB": 1024 ** 2, "MiB": 1024 ** 2, "GB": 1024 ** 3,
                    "GiB": 1024 ** 3}),
    "frequency": ("MHz", {"Hz": 1e-6, "kHz": 1e-3, "MHz": 1.0, "GHz": 1e3}),
    "throughput": ("TFLOPS", {"FLOPS": 1e-12, "GFLOPS": 1e-3, "TFLOPS": 1.0}),
    "bandwidth": ("GB/s", {"B/s": 1e-9, "MB/s": 1e-3, "GB/s": 1.0, "TB/s": 1e3}),
    "time": ("us", {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}),
    "cycles_per_mac": ("cycles/MAC", {"cycles/MAC": 1.0}),
    "cycles": ("cycles", {"cycles": 1.0}),
    "count": ("count", {"count": 1.0}),
    "ratio": ("ratio", {"ratio": 1.0, "%": 0.01}),
}

# field -> dimension, per section. A profile may omit a figure; a predictor that needs it says so.
SPEC_FIELDS: dict[str, str] = {
    "clock": "frequency",
    "cores": "count",
    "peak_fp32": "throughput",
    "peak_fp16": "throughput",
    "memory_bandwidth": "bandwidth",
    "memory": "bytes",
    "sram": "bytes",
    "flash": "bytes",
    "launch_overhead": "time",
    "compute_efficiency": "ratio",
    "memory_efficiency": "ratio",
}
MCU_FIELDS: dict[str, str] = {
    "cycles_per_mac_conv": "cycles_per_mac",
    "cycles_per_mac_pointwise": "cycles_per_mac",
    "cycles_per_mac_depthwise": "cycles_per_mac",
    "cycles_per_mac_linear": "cycles_per_mac",
    "cycles_per_elem_pool": "cycles_per_mac",
    "layer_overhead": "cycles",
    "sram_runtime": "bytes",
    "flash_runtime": "bytes",
}


# Every number a predictor reads from a profile must be finite: NaN or infinity in a clock, an overhead or a
# coefficient would make every prediction NaN (and NaN compares as "fits"). Only fidelity figures may be NaN.
_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


class Figure(BaseModel):
    """One number with its unit and where it came from."""

    model_config = _STRICT
    value: float
    unit: str
    source: Source
    note: str | None = None

    def to(self, dimension: str) -> float:
        canonical, factors = _DIMENSIONS[dimension]
        return self.value * factors[self.unit]


def _check_figures(values: dict[str, Any], fields: dict[str, str], section: str) -> dict[str, Figure]:
    out = {}
    for name, raw in values.items():
        if name not in fields:
            raise ValueError(f"unknown figure '{section}.{name}'; allowed: {', '.join(sorted(fields))}")
        try:
            fig = raw if isinstance(raw, Figure) else Figure.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            sub = ".".join(str(p) for p in err["loc"])
            msg = "unknown key (not allowed here)" if err["type"] == "extra_forbidden" else \
                "missing required field" if err["type"] == "missing" else f"{err['msg']}, got {err.get('input')!r}"
            raise ValueError(f"'{section}.{name}{'.' + sub if sub else ''}': {msg} (a figure is "
                             "{value, unit, source: spec-sheet|measured|fitted|imported|defaulted, note})") from None
        canonical, factors = _DIMENSIONS[fields[name]]
        if fig.unit not in factors:
            raise ValueError(f"'{section}.{name}' has unit '{fig.unit}', which is not a {fields[name]}; "
                             f"allowed units: {', '.join(factors)}")
        if fig.value < 0:
            raise ValueError(f"'{section}.{name}' must be >= 0, got {fig.value}")
        out[name] = fig
    return out


class LutEntry(BaseModel):
    """One OFA lookup-table entry: latency of one op in ms (mean, std over `count` runs)."""

    model_config = _STRICT
    mean: float = Field(ge=0)
    std: float = Field(default=0.0, ge=0)
    count: int = Field(default=1, ge=0)


class LookupTable(BaseModel):
    """Per-op latency (ms) per resolution, keyed as OFA keys its tables."""

    model_config = _STRICT
    source: Source
    tables: dict[int, dict[str, LutEntry]] = Field(default_factory=dict)


class LearnedModel(BaseModel):
    """Per-op-kind linear regressors (ms per feature unit), `features` naming the columns of each `coef` row."""

    model_config = _STRICT
    source: Source
    features: list[str]
    coef: dict[str, list[float]]
    note: str | None = None


class Correction(BaseModel):
    """End-to-end correction for one space: latency = scale * sum-of-ops + per_block * active blocks + offset_ms."""

    model_config = _STRICT
    source: Source
    scale: float = 1.0
    per_block_ms: float = 0.0
    offset_ms: float = 0.0


class Fidelity(BaseModel):
    """How well a predictor ranked and matched held-out measured subnets."""

    model_config = ConfigDict(extra="forbid")
    predictor: str
    n: int
    spearman: float
    kendall: float
    rmse: float
    mape: float
    within_10pct: float
    source: Source = "measured"
    resolutions: list[int] | None = None
    points: list[tuple[float, float]] | None = Field(
        default=None, description="(predicted ms, measured ms) of each held-out subnet, for a scatter of the two")


class LatencySection(BaseModel):
    """How latency was (or will be) measured and what was learned from it."""

    model_config = _STRICT
    batch_size: int = Field(default=1, ge=1)
    threads: int | None = Field(default=None, ge=1)
    backend: Literal["torch", "onnxruntime", "cuda", "tflite", "tinyengine", "other"] | None = None
    dtype: Literal["fp32", "fp16", "int8"] = "fp32"
    # what measured latencies were read from: the measuring thread's CPU time (one CPU thread, in process),
    # wall time, or CUDA events
    clock: Literal["thread-cpu", "wall", "cuda-events"] | None = None
    lookup_table: LookupTable | None = None
    learned: LearnedModel | None = None
    corrections: dict[str, Correction] = Field(default_factory=dict)
    fidelity: dict[str, list[Fidelity]] = Field(default_factory=dict)
    warnings: dict[str, list[str]] = Field(default_factory=dict)  # per space: what the last calibration doubts


class DeviceProfile(BaseModel):
    """A device: kind (cpu, gpu, mcu), spec figures, MCU cost figures, and latency tables/models."""

    model_config = _STRICT
    name: str
    kind: Literal["cpu", "gpu", "mcu"]
    description: str = ""
    base: str | None = None  # the profile a new device's spec figures were copied from
    state: Literal["spec", "measured", "unmeasured", "fitted", "imported"] = "spec"
    specs: dict[str, Figure] = Field(default_factory=dict)
    mcu: dict[str, Figure] = Field(default_factory=dict)
    latency: LatencySection = Field(default_factory=LatencySection)
    path: str | None = Field(default=None, exclude=True)

    @field_validator("specs", mode="before")
    @classmethod
    def _specs(cls, v: Any) -> Any:
        return _check_figures(v or {}, SPEC_FIELDS, "specs") if isinstance(v, dict) else v

    @field_validator("mcu", mode="before")
    @classmethod
    def _mcu(cls, v: Any) -> Any:
        return _check_figures(v or {}, MCU_FIELDS, "mcu") if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _kind_needs(self) -> "DeviceProfile":
        need = {"mcu": ("clock", "sram", "flash"), "gpu": ("peak_fp32", "memory_bandwidth"), "cpu": ()}[self.kind]
        missing = [f for f in need if f not in self.specs]
        if missing:
            raise ValueError(f"a {self.kind} profile needs specs.{', specs.'.join(missing)}")
        return self

    def figure(self, name: str, dimension: str | None = None) -> float:
        """A spec or MCU figure in its canonical unit (MHz, B, TFLOPS, GB/s, us, cycles/MAC, cycles)."""
        for section, fields in ((self.specs, SPEC_FIELDS), (self.mcu, MCU_FIELDS)):
            if name in section:
                return section[name].to(dimension or fields[name])
        raise ProfileError(f"device '{self.name}' has no figure '{name}'"
                           + (f" (profile {self.path})" if self.path else ""))

    def has(self, name: str) -> bool:
        return name in self.specs or name in self.mcu

    def to_yaml_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, exclude_defaults=False)


def format_validation_error(exc: ValidationError, where: str) -> str:
    """One line per problem: `FILE: field.path: message`."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not allowed here)"
        elif err["type"] == "missing":
            msg = "missing required field"
        elif err["type"] == "literal_error":
            msg = f"{msg}, got {err.get('input')!r}"
        lines.append(f"{where}: {loc + ': ' if loc else ''}{msg}")
    return "; ".join(lines)
