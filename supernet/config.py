"""Experiment configs for supernet training, loaded from YAML and validated (errors name the field).

An experiment is a search space, a data set, training settings and progressive shrinking as a list of phases:
each phase says which elastic choices are unlocked, for how long, at which learning rate, with how many subnets
per step and how much distillation from the frozen largest network.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from supernet._io import read_yaml
from supernet.data import DataConfig
from supernet.errors import NasError


class ConfigError(NasError):
    """An experiment YAML is malformed: the message names the field and what is allowed."""


def _check_keys(data: Mapping[str, Any], cls: type, where: str) -> None:
    if not isinstance(data, Mapping):
        raise ConfigError(f"field '{where}' must be a mapping, got {type(data).__name__}")
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"'{where}' has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _number(value: Any, where: str, *, low: float | None = None, integer: bool = False, positive: bool = False) -> Any:
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if integer:
        ok = ok and float(value).is_integer()
    if ok and low is not None:
        ok = value >= low
    if ok and positive:
        ok = value > 0
    if not ok:
        kind = "an integer" if integer else "a number"
        bound = " > 0" if positive else (f" >= {low}" if low is not None else "")
        raise ConfigError(f"field '{where}' must be {kind}{bound}, got {value!r}")
    return int(value) if integer else float(value)


def _int_list(value: Any, where: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"field '{where}' must be a non-empty list of integers (or null for the largest only)")
    return tuple(sorted({_number(v, f"{where}[{i}]", integer=True, positive=True) for i, v in enumerate(value)}))


KD_SOURCES = ("teacher", "inplace")
RESOLUTION_PER = ("step", "subnet")


@dataclass(frozen=True)
class PhaseConfig:
    """One step of progressive shrinking. `kernel`/`expand`/`depth`: the choices unlocked in this phase (null: the
    largest only); `resolutions`: sampled per step (null: all of the space's); `epochs` × `steps_per_epoch`
    (null: the whole training set per epoch) batches; LR `lr` after `warmup_steps`, cosine down to `lr_min`;
    `subnets_per_step` subnets each step (with `sandwich`: the phase's largest and smallest among them);
    `kd_weight` (null: the experiment's `train.kd_weight`) on distillation from `kd_source`: `teacher`, the largest
    net frozen when the first distilling phase starts (OFA), or `inplace`, the step's own largest subnet (BigNAS's
    in-place distillation: no teacher phase needed; needs `sandwich`, the largest itself learns from the labels);
    `sort_channels` reorders expanded channels by importance when the phase starts (OFA, before elastic expand);
    `resolution_per`: `step`, one resolution drawn per step for all its subnets (OFA), or `subnet`, each subnet at
    its own (AttentiveNAS): with `sandwich` the largest at the largest resolution and the smallest at the
    smallest, where they are evaluated and where the largest's soft targets are best, the others drawn each."""

    name: str
    epochs: int = 1
    lr: float = 0.05
    lr_min: float = 0.0
    warmup_steps: int = 0
    steps_per_epoch: int | None = None
    kernel: tuple[int, ...] | None = None
    expand: tuple[int, ...] | None = None
    depth: tuple[int, ...] | None = None
    resolutions: tuple[int, ...] | None = None
    subnets_per_step: int = 1
    sandwich: bool = False
    kd_weight: float | None = None
    kd_source: str = "teacher"
    sort_channels: bool = False
    resolution_per: str = "step"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> "PhaseConfig":
        _check_keys(data, cls, where)
        if not isinstance(data.get("name"), str) or not data.get("name"):
            raise ConfigError(f"field '{where}.name' must be a non-empty string")
        kw: dict[str, Any] = {"name": data["name"]}
        for key, low, integer, positive in (("epochs", None, True, True), ("lr", 0, False, False),
                                            ("lr_min", 0, False, False), ("warmup_steps", 0, True, False),
                                            ("subnets_per_step", None, True, True)):
            if key in data:
                kw[key] = _number(data[key], f"{where}.{key}", low=low, integer=integer, positive=positive)
        if data.get("steps_per_epoch") is not None:
            kw["steps_per_epoch"] = _number(data["steps_per_epoch"], f"{where}.steps_per_epoch", integer=True,
                                            positive=True)
        if data.get("kd_weight") is not None:
            kw["kd_weight"] = _number(data["kd_weight"], f"{where}.kd_weight", low=0)
        for key in ("kernel", "expand", "depth", "resolutions"):
            kw[key] = _int_list(data.get(key), f"{where}.{key}")
        if "kd_source" in data:
            if data["kd_source"] not in KD_SOURCES:
                raise ConfigError(f"field '{where}.kd_source' must be one of {', '.join(KD_SOURCES)}, "
                                  f"got {data['kd_source']!r}")
            kw["kd_source"] = data["kd_source"]
        if "resolution_per" in data:
            if data["resolution_per"] not in RESOLUTION_PER:
                raise ConfigError(f"field '{where}.resolution_per' must be one of {', '.join(RESOLUTION_PER)}, "
                                  f"got {data['resolution_per']!r}")
            kw["resolution_per"] = data["resolution_per"]
        for key in ("sandwich", "sort_channels"):
            if key in data:
                if not isinstance(data[key], bool):
                    raise ConfigError(f"field '{where}.{key}' must be true or false, got {data[key]!r}")
                kw[key] = data[key]
        phase = cls(**kw)
        if phase.sandwich and phase.subnets_per_step < 2:
            raise ConfigError(f"field '{where}.subnets_per_step' must be >= 2 with sandwich: true (largest + smallest)")
        if phase.kd_source == "inplace" and not phase.sandwich:
            raise ConfigError(f"field '{where}.kd_source' = inplace needs sandwich: true (the step's largest subnet is "
                              f"the teacher)")
        return phase


@dataclass(frozen=True)
class TrainConfig:
    """Settings shared by all phases. `batch_size` is the global batch (split across torchrun processes);
    `checkpoint_every` steps (and at each phase's end) the whole state is written; `eval_images` val images are
    used for the phase-end checks (null: all); `device`: auto | cpu | cuda; `threads`: CPU threads for torch
    (null: torch's default; 1 on a machine shared with other jobs, where more threads mostly wait on each other);
    `kernel_transform`: false keeps OFA's kernel-transformation matrices at identity (a smaller kernel is the plain
    centre of the larger one: the ablation that OFA's paper reports)."""

    batch_size: int = 128
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 3e-5
    label_smoothing: float = 0.1
    kd_weight: float = 1.0
    checkpoint_every: int = 100
    log_every: int = 10
    bn_calib_images: int = 2000
    eval_images: int | None = 2000
    final_eval: bool = True
    workers: int = 0
    device: str = "auto"
    threads: int | None = None
    kernel_transform: bool = True

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "TrainConfig":
        data = dict(data or {})
        _check_keys(data, cls, "train")
        kw: dict[str, Any] = {}
        for key, low, integer, positive in (("batch_size", None, True, True), ("momentum", 0, False, False),
                                            ("weight_decay", 0, False, False), ("label_smoothing", 0, False, False),
                                            ("kd_weight", 0, False, False), ("checkpoint_every", None, True, True),
                                            ("log_every", None, True, True), ("bn_calib_images", None, True, True),
                                            ("workers", 0, True, False)):
            if key in data:
                kw[key] = _number(data[key], f"train.{key}", low=low, integer=integer, positive=positive)
        if data.get("eval_images") is not None:
            kw["eval_images"] = _number(data["eval_images"], "train.eval_images", integer=True, positive=True)
        elif "eval_images" in data:
            kw["eval_images"] = None
        if data.get("threads") is not None:
            kw["threads"] = _number(data["threads"], "train.threads", integer=True, positive=True)
        for key in ("nesterov", "final_eval", "kernel_transform"):
            if key in data:
                if not isinstance(data[key], bool):
                    raise ConfigError(f"field 'train.{key}' must be true or false, got {data[key]!r}")
                kw[key] = data[key]
        if data.get("optimizer", "sgd") not in ("sgd", "adamw"):
            raise ConfigError(f"field 'train.optimizer' = {data['optimizer']!r} is not allowed; allowed: sgd, adamw")
        kw["optimizer"] = data.get("optimizer", "sgd")
        if data.get("device", "auto") not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"field 'train.device' = {data['device']!r} is not allowed; allowed: auto, cpu, cuda")
        kw["device"] = data.get("device", "auto")
        if kw.get("label_smoothing", 0) >= 1:
            raise ConfigError("field 'train.label_smoothing' must be below 1")
        return cls(**kw)


@dataclass(frozen=True)
class ExperimentConfig:
    """A supernet training recipe: `name` (the run folder's default name), `space` (preset name or YAML path;
    its in_channels and num_classes follow the data), `data`, `train`, `phases`, `seed`."""

    name: str
    space: str
    data: DataConfig
    train: TrainConfig
    phases: tuple[PhaseConfig, ...]
    seed: int = 0
    description: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ExperimentConfig":
        _check_keys(data, cls, "experiment")
        for key in ("name", "space", "phases"):
            if key not in data:
                raise ConfigError(f"experiment is missing field '{key}'")
        if not isinstance(data["name"], str) or not data["name"] or "/" in data["name"]:
            raise ConfigError(f"field 'name' must be a non-empty string without '/', got {data['name']!r}")
        if not isinstance(data["space"], str):
            raise ConfigError(f"field 'space' must be a preset name or a YAML path, got {data['space']!r}")
        phases = data["phases"]
        if not isinstance(phases, list) or not phases:
            raise ConfigError("field 'phases' must be a non-empty list of phases")
        parsed = tuple(PhaseConfig.from_dict(p, f"phases[{i}]") for i, p in enumerate(phases))
        names = [p.name for p in parsed]
        if len(set(names)) != len(names):
            raise ConfigError(f"field 'phases' has repeated names {names}; each phase needs its own name")
        try:
            data_cfg = DataConfig.from_dict(data.get("data"))
        except NasError as exc:
            raise ConfigError(str(exc)) from None
        seed = _number(data.get("seed", 0), "seed", low=0, integer=True)
        return cls(name=data["name"], space=data["space"], data=data_cfg, train=TrainConfig.from_dict(data.get("train")),
                   phases=parsed, seed=seed, description=str(data.get("description", "")))

    @classmethod
    def from_yaml(cls, path: str | Path) -> "ExperimentConfig":
        data = read_yaml(path, ConfigError, "experiment file")
        if not isinstance(data, Mapping):
            raise ConfigError(f"experiment file '{path}' must hold a mapping (name, space, data, train, phases)")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["phases"] = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in p.items()} for p in out["phases"]]
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def with_data_dir(self, data_dir: str | None) -> "ExperimentConfig":
        return self if data_dir is None else replace(self, data=replace(self.data, data_dir=str(data_dir)))

    def config_hash(self) -> str:
        """sha256 of what decides the trained weights (not where the data lives, not names or logging)."""
        d = self.to_dict()
        d.pop("name"), d.pop("description")
        d["data"].pop("data_dir")
        for p in d["phases"]:  # a field added later, at its default: the hashes of earlier runs stay valid
            if p.get("kd_source") == "teacher":
                p.pop("kd_source")
            if p.get("resolution_per") == "step":
                p.pop("resolution_per")
        if d["train"].get("kernel_transform"):
            d["train"].pop("kernel_transform")
        for key in ("workers", "log_every", "checkpoint_every", "eval_images", "final_eval", "device",
                    "threads"):
            d["train"].pop(key)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


__all__ = ["ExperimentConfig", "PhaseConfig", "TrainConfig", "ConfigError"]
