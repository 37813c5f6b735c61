"""Request and response schemas of the REST API (apart from the store's tables: rows never leave the server)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]
MAX_ARCHS = 5000
MAX_DEVICES = 32
EXPORT_FORMATS = ("safetensors", "torchscript", "onnx", "int8", "c-header", "c")  # nas.export.FORMATS (a test checks)
ExportFormat = Literal["safetensors", "torchscript", "onnx", "int8", "c-header", "c"]


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
    finetune: int | str = Field(default=0, description="distillation fine-tuning before export: a number of steps, "
                                "or a share of the supernet's training steps like '10%' (0: none)")


class ExportOut(JobOut):
    id: str
    run: str
    device: str
    arch: dict[str, Any]
    experiment: str | None
    files: list[str]
    download: str | None = Field(description="where to GET the zip once the export succeeded")


class ErrorOut(BaseModel):
    """An error that is about the request as a whole (401, 404, 409, 413, ...)."""

    detail: str


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description="the field's path, e.g. [\"body\", \"archs\", 3, \"ks\", 2]")
    msg: str
    type: str
    ctx: dict[str, Any] | None = Field(default=None, description="`allowed`: the allowed values, where few")


class ValidationErrorOut(BaseModel):
    """422: what is wrong with which field (FastAPI's shape, whether pydantic or the service found it)."""

    detail: list[ErrorItem]
class TrialsOut(BaseModel):
    """One device's trials as columns: `columns[name][i]` is figure `name` of the i-th trial."""

    experiment: str
    device: str
    status: JobStatus
    source: Literal["result", "study"] = Field(description="result: the finished search's trials table; study: "
                                                           "the trials recorded so far (running or stopped)")
    n: int = Field(description="trials (rows)")
    objectives: dict[str, Literal["minimize", "maximize"]]
    constraints: dict[str, float] = Field(description="upper bounds per constrained figure, in its unit")
    chosen: int | None = Field(description="trial number of the chosen subnet (the best feasible one)")
    columns: dict[str, list[float | bool | None]] = Field(
        description="trial, every objective, constraint and predicted figure present, feasible, front")


class TrialOut(BaseModel):
    experiment: str
    device: str
    trial: int
    arch: dict[str, Any] = Field(description="the subnet in once-for-all's keys (ks, e, d, r)")
    feasible: bool
    values: dict[str, float] = Field(description="objectives, constraint values and predicted figures")


class SubnetsOut(BaseModel):
    """A run's measured subnets as columns (accuracy 0..1, macs, params, r px, split fit or heldout)."""

    run: str
    checkpoint_hash: str | None
    n: int
    columns: dict[str, list[float | str | None]]


class DeviceFidelityOut(BaseModel):
    device: str
    state: str
    spaces: dict[str, list[dict[str, Any]]] = Field(
        description="per space: each latency predictor's fidelity on held-out measured subnets (spearman, kendall, "
                    "rmse ms, mape, within_10pct, n)")


class CardOut(BaseModel):
    export: str
    card: dict[str, Any] = Field(description="the bundle's card.json (without the command, which names server paths)")
