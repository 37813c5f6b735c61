"""Request and response schemas of the REST API (apart from the store's tables: rows never leave the server)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]
MAX_ARCHS = 5000
MAX_DEVICES = 32
EXPORT_FORMATS = ("safetensors", "torchscript", "onnx", "int8", "c-header")  # nas.export.FORMATS (a test checks)
ExportFormat = Literal["safetensors", "torchscript", "onnx", "int8", "c-header"]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    database: str = Field(description="the store's database backend (sqlite, postgresql)")
    workers: int = Field(description="jobs that may run at once")
    running_jobs: int


class SpaceOut(BaseModel):
    name: str
    description: str
    size: str = Field(description="number of distinct subnets (a decimal string: it exceeds 64 bits)")
    num_blocks: int
    num_stages: int
    kernel_choices: list[int]
    expand_choices: list[float]
    depth_choices: list[int]
    resolutions: list[int]
    num_classes: int
    in_channels: int


class FigureOut(BaseModel):
    value: float
    unit: str
    source: str
    note: str | None = None


class DeviceOut(BaseModel):
    name: str
    kind: str
    description: str = ""
    state: str
    origin: Literal["shipped", "measured", "uploaded", "fitted"]
    specs: dict[str, FigureOut] = {}
    mcu: dict[str, FigureOut] = {}
    latency_model: list[str] = Field(default=[], description="what the profile holds for latency: lookup-table, "
                                                             "learned, corrections")


class RunOut(BaseModel):
    id: str
    space: str | None
    checkpoint_hash: str | None
    finished: bool
    weights: bool
    predictors: dict[str, Any]
    fidelity: dict[str, Any] | None
    imported: dict[str, Any] | None = None  # where an imported run's weights came from (once-for-all's file)
    info: dict[str, Any] | None = None
    space_config: dict[str, Any] | None = None


class ArchIn(BaseModel):
    """One subnet in once-for-all's keys: kernel `ks` and expand `e` per block slot, depth `d` per stage, `r` px."""

    model_config = ConfigDict(extra="forbid")
    ks: list[int]
    e: list[float]
    d: list[int]
    r: int | list[int]


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    space: str = Field(description="a space name, as GET /spaces lists them")
    devices: list[str] = Field(min_length=1, max_length=MAX_DEVICES, description="device names (GET /devices)")
    archs: list[ArchIn] = Field(min_length=1, max_length=MAX_ARCHS)
    run: str | None = Field(default=None, description="a trained run's id, for predicted accuracy")


class Prediction(BaseModel):
    arch_index: int
    device: str
    latency_ms: float
    macs: int
    params: int
    sram_bytes: float
    flash_bytes: float
    fits: bool
    accuracy: float | None = None
    accuracy_std: float | None = None


class PredictResponse(BaseModel):
    space: str
    run: str | None
    latency_source: dict[str, str] = Field(description="per device: lookup-table, learned, roofline or mcu")
    predictions: list[Prediction] = Field(description="one row per arch × device, archs in request order")


class JobOut(BaseModel):
    status: JobStatus
    progress: float = Field(description="0..1")
    message: str
    error: str | None
    attempts: int
    interruptions: int = Field(description="times a server stopped while it ran")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ExperimentOut(JobOut):
    id: str
    name: str
    devices: list[str]
    budget: int
    trials_done: int
    best: dict[str, Any] = Field(description="per device: the best feasible arch found so far and its figures")
    result: dict[str, Any] | None = None
    spec: dict[str, Any] | None = None


class Accepted(BaseModel):
    id: str
    status: JobStatus
    url: str


class ParetoOut(BaseModel):
    experiment: str
    device: str
    rows: list[dict[str, Any]]


class ExportRequest(BaseModel):
    """Export one arch for one device: give `arch`, or `experiment` to take that experiment's best for `device`."""

    model_config = ConfigDict(extra="forbid")
    run: str | None = Field(default=None, description="the trained run's id (default: the experiment's run)")
    device: str
    arch: ArchIn | None = None
    experiment: str | None = None
    formats: list[ExportFormat] | None = Field(default=None, description="default: the device kind's formats")
    finetune_epochs: int = Field(default=0, ge=0, le=100)


class ExportOut(JobOut):
    id: str
    run: str
    device: str
    arch: dict[str, Any]
    experiment: str | None
    files: list[str]
    download: str | None = Field(description="where to GET the zip once the export succeeded")
