"""Train a supernet once: progressive shrinking (phases from the experiment YAML), distillation from the frozen
largest network, sandwich sampling, elastic resolution, resumable checkpoints, data parallel under torchrun.

`train(config, out_dir)` is the whole loop, top to bottom. Every random choice of a step (batch order,
augmentation, resolution, subnets, dropout) is drawn from generators seeded by (seed, step), so a run resumed
from any checkpoint ends with the same weights as one that never stopped.
"""

from __future__ import annotations

import copy
import csv
import io
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from supernet import distributed as ddp
from supernet._io import save_torch, sha256_file, write_text
from supernet.arch import ArchConfig
from supernet.config import ExperimentConfig, PhaseConfig
from supernet.data import Splits, augment_batch, load_splits, make_loader
from supernet.errors import CheckpointError
from supernet.evaluate import evaluate, recalibrate_bn, resize_to
from supernet.network import Supernet
from supernet.run import (CHECKPOINT, EXPERIMENT, METRICS, RUN_JSON, WEIGHTS, RunInfo, read_run_info,
                          write_run_info)
from supernet.space import SearchSpace

CHECKPOINT_FORMAT = 1
METRIC_COLUMNS = ["kind", "phase", "epoch", "step", "global_step", "loss", "lr", "img_per_s", "elapsed_s", "arch",
                  "split", "top1"]


# ------------------------------------------------------------------------------------------------ pieces
def build_space(config: ExperimentConfig, splits: Splits) -> SearchSpace:
    """The experiment's space with its input channels and classes set by the data."""
    base = SearchSpace.preset(config.space)
    return SearchSpace.from_dict({**base.to_dict(), "in_channels": splits.in_channels,
                                  "num_classes": splits.num_classes})


def phase_choices(space: SearchSpace, phase: PhaseConfig) -> tuple[tuple[int, ...], ...]:
    """(kernel, expand, depth, resolution) choices unlocked in `phase` (null fields: the largest only / all r)."""
    return (phase.kernel or (max(space.kernel_choices),), phase.expand or (max(space.expand_choices),),
            phase.depth or (space.max_depth,), phase.resolutions or space.resolutions)


def phase_extremes(space: SearchSpace, phase: PhaseConfig, r: int | None = None) -> tuple[ArchConfig, ArchConfig]:
    """The largest and smallest subnets that `phase` trains (at `r`, else the largest/smallest resolution)."""
    ks, es, ds, rs = phase_choices(space, phase)
    nb, ns = space.num_blocks, space.num_stages
    return (ArchConfig((max(ks),) * nb, (max(es),) * nb, (max(ds),) * ns, r or max(rs)),
            ArchConfig((min(ks),) * nb, (min(es),) * nb, (min(ds),) * ns, r or min(rs)))


def sample_subnets(space: SearchSpace, phase: PhaseConfig, r: int, rng: np.random.Generator) -> list[ArchConfig]:
    """The subnets of one step: with `sandwich` the phase's largest and smallest first, then uniform draws; all
    at `r`, or with `resolution_per: subnet` each at its own (the sandwich's at the phase's largest and smallest
    resolution, the others drawn: `r` unused)."""
    ks, es, ds, rs = phase_choices(space, phase)
    own = phase.resolution_per == "subnet"
    archs = list(phase_extremes(space, phase, None if own else r)) if phase.sandwich else []
    while len(archs) < phase.subnets_per_step:
        archs.append(ArchConfig(tuple(int(v) for v in rng.choice(ks, space.num_blocks)),
                                tuple(int(v) for v in rng.choice(es, space.num_blocks)),
                                tuple(int(v) for v in rng.choice(ds, space.num_stages)),
                                int(rng.choice(rs)) if own else r))
    return [space.validate(a) for a in archs]


def step_subnets(space: SearchSpace, phase: PhaseConfig, rng: np.random.Generator) -> list[ArchConfig]:
    """The subnets one training step of `phase` trains, each with its resolution, drawn from `rng` as `train`
    draws them (one resolution for the step, or with `resolution_per: subnet` one per subnet)."""
    if phase.resolution_per == "subnet":
        return sample_subnets(space, phase, 0, rng)
    return sample_subnets(space, phase, int(rng.choice(phase_choices(space, phase)[3])), rng)


def step_inputs(x: torch.Tensor, archs: list[ArchConfig]) -> dict[int, torch.Tensor]:
    """The batch `x` resized to each resolution the step's subnets ask for, channels_last, keyed by it."""
    return {r: resize_to(x, r).contiguous(memory_format=torch.channels_last) for r in sorted({a.r for a in archs})}


def make_optimizer(net: nn.Module, config: ExperimentConfig, phase: PhaseConfig) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW; no weight decay on BN, biases and the kernel-transformation matrices (OFA)."""
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        (no_decay if p.ndim <= 1 or "kernel_transforms" in name else decay).append(p)
    t = config.train
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if t.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=phase.lr)
    return torch.optim.SGD(groups, lr=phase.lr, momentum=t.momentum, nesterov=t.nesterov and t.momentum > 0)


def make_scheduler(optimizer: torch.optim.Optimizer, phase: PhaseConfig, total_steps: int):  # noqa: ANN201
    """Linear warm-up over `warmup_steps`, then cosine from `lr` to `lr_min` at the phase's last step."""
    floor = phase.lr_min / phase.lr if phase.lr > 0 else 0.0

    def factor(step: int) -> float:
        if step < phase.warmup_steps:
            return (step + 1) / (phase.warmup_steps + 1)
        span = max(1, total_steps - phase.warmup_steps)
        progress = min(1.0, (step - phase.warmup_steps) / span)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Soft cross-entropy against the teacher's probabilities (temperature 1, as OFA)."""
    return -(F.softmax(teacher, 1) * F.log_softmax(student, 1)).sum(1).mean()


def steps_per_epoch(phase: PhaseConfig, n_train: int, batch_size: int) -> int:
    full = n_train // batch_size
    if full < 1:
        from supernet.config import ConfigError

        raise ConfigError(f"field 'train.batch_size' = {batch_size} is larger than the {n_train} training images")
    return full if phase.steps_per_epoch is None else min(full, phase.steps_per_epoch)


@dataclass
class Progress:
    """Where training stands: the phase index, the epoch within it, the step within the epoch, the global step."""

    phase: int = 0
    epoch: int = 0
    step: int = 0
    global_step: int = 0
    metrics: list[dict[str, Any]] = field(default_factory=list)

    def state(self) -> dict[str, Any]:
        return {"phase": self.phase, "epoch": self.epoch, "step": self.step, "global_step": self.global_step}


class FrozenTeacher:
    """The frozen largest net whose logits are the soft targets of distillation, with its BN statistics
    recalibrated at each input resolution the first time a batch of that size arrives.

    Elastic resolution feeds the teacher 20-28 px batches (OFA: 128-224 px); BN statistics of another resolution
    are wrong for it: the demo recipe's teacher, recalibrated at 28 px only, scored 46% top-1 at 20 px (86% with
    20 px statistics; BENCHMARKS.md "supernet-ablations"), so the smallest subnet learned from noise. OFA runs its
    teacher in train mode (the batch's own statistics); per-resolution running statistics are as good at the
    largest and do not depend on a rank's share of the batch. The statistics are a function of the frozen weights
    and the seeded calibration images alone, so a resumed run recomputes them bit for bit (the checkpoint keeps
    only the weights)."""

    def __init__(self, net: Supernet, calib: Any, n_images: int):
        self.net = net
        self.net.set_active(net.space.largest())
        self.net.requires_grad_(False).eval()
        self.calib, self.n_images = calib, n_images
        self._bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self._stats: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self._loaded: int | None = None

    @classmethod
    def copy_of(cls, net: Supernet, calib: Any, n_images: int) -> "FrozenTeacher":
        return cls(copy.deepcopy(net), calib, n_images)

    def _use_resolution(self, r: int) -> None:
        if r == self._loaded:
            return
        if r not in self._stats:
            # fork_rng: iterating a DataLoader draws its base seed from the global RNG, which would change the
            # step's dropout masks depending on when a resolution first came (a resumed run must not differ)
            with torch.random.fork_rng(devices=[]), torch.autocast(_device_type(self.net), enabled=False):
                recalibrate_bn(self.net, self.net.space.largest(r), self.calib, self.n_images)
            self._stats[r] = [(m.running_mean.clone(), m.running_var.clone()) for m in self._bns]
        else:
            for m, (mean, var) in zip(self._bns, self._stats[r]):
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
        self._loaded = r

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Soft-target logits of the largest net for the N×C×r×r batch `x`, with BN statistics at r px."""
        self._use_resolution(int(x.shape[-1]))
        return self.net(x)


def _device_type(module: nn.Module) -> str:
    return next(module.parameters()).device.type


def _metrics_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


HEARTBEAT_S = 60.0


def _progress_bar(enabled: bool, total: int, desc: str):  # noqa: ANN202
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, disable=not enabled, dynamic_ncols=True, leave=False)


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's state dict as CPU tensors, so files written on a GPU load on any machine."""
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def _tensorboard(out_dir: Path, enabled: bool):  # noqa: ANN202
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))


def _load_checkpoint(path: Path, config_hash: str) -> dict[str, Any]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a torn or foreign file is unusable whatever the reason
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an ofa-nas training checkpoint (format {CHECKPOINT_FORMAT})")
    if ckpt.get("config_hash") != config_hash:
        raise CheckpointError(f"checkpoint {path} belongs to another config (hash {str(ckpt.get('config_hash'))[:12]}, "
                              f"this experiment {config_hash[:12]}); train into a new --out folder, or resume with "
                              f"the experiment.yaml saved in that folder")
    return ckpt


# ------------------------------------------------------------------------------------------------ the loop
def train(config: ExperimentConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True,
          stop_at_step: int | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Train `config`'s supernet into `out_dir` (run folder layout in docs/CONTRACTS.md) and return the folder.

    `resume`: continue from `out_dir/checkpoint.pt` (refused if it belongs to another config).
    `stop_at_step`: stop once this many steps are done, as an interruption would (the run stays resumable).
    """
    out = Path(out_dir)
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    ctx = ddp.setup(config.train.device)
    t = config.train
    if t.threads:
        torch.set_num_threads(t.threads)
    cuda = ctx.device.type == "cuda"
    config_hash = config.config_hash()
    ckpt_path = out / CHECKPOINT
    ckpt = None
    if (out / RUN_JSON).is_file() and read_run_info(out).imported:
        raise CheckpointError(f"{out} holds a run imported from once-for-all: it is never trained or resumed here; "
                              f"choose another --out folder")
    if resume and ckpt_path.is_file():
        ckpt = _load_checkpoint(ckpt_path, config_hash)
    elif not resume and ckpt_path.is_file():
        raise CheckpointError(f"{out} already holds a training checkpoint; pass --resume to continue it, "
                              f"or choose another --out folder")

    splits = load_splits(config.data)
    space = build_space(config, splits)
    torch.manual_seed(config.seed)  # the same initial weights on every rank and in every run of this config
    # channels_last: faster convs on GPUs, and on CPUs a 1.5-4x faster depthwise backward (oneDNN)
    net = Supernet(space).to(ctx.device, memory_format=torch.channels_last)
    if not t.kernel_transform:  # the matrices stay at their identity start: smaller kernels are plain centres
        for name, p in net.named_parameters():
            if "kernel_transforms" in name:
                p.requires_grad_(False)
    calib = make_loader(splits.train, 200, shuffle=True, seed=config.seed + 1)  # OFA: BN stats from train images
    val = make_loader(splits.val if t.eval_images is None else
                      splits.val.subset(torch.arange(min(t.eval_images, len(splits.val)))), 500, shuffle=False)
    state = Progress()
    teacher: FrozenTeacher | None = None
    if ckpt is not None:
        net.load_state_dict(ckpt["model"])
        if ckpt["teacher"] is not None:
            teacher = FrozenTeacher(Supernet(space).to(ctx.device, memory_format=torch.channels_last), calib,
                                    t.bn_calib_images)
            teacher.net.load_state_dict(ckpt["teacher"])
        state = Progress(**ckpt["progress"], metrics=list(ckpt["metrics"]))
        torch.set_rng_state(ckpt["rng"]["torch"])
        random.setstate((ckpt["rng"]["python"][0], tuple(ckpt["rng"]["python"][1]), ckpt["rng"]["python"][2]))
        log(f"resumed {out} at phase {config.phases[min(state.phase, len(config.phases) - 1)].name}, "
            f"step {state.global_step}")
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / EXPERIMENT, config.to_yaml())
        write_run_info(out, RunInfo(config.name, space.to_dict(), config.data.to_dict(), config_hash=config_hash,
                                    preprocessing=splits.preprocessing))
    tb = _tensorboard(out, ctx.is_main)
    params = [p for p in net.parameters()]
    optimizer = scheduler = None

    def save_checkpoint() -> None:
        ddp.average_buffers(net, ctx)
        if ctx.is_main:
            rs = random.getstate()
            save_torch(ckpt_path, {
                "format": CHECKPOINT_FORMAT, "config_hash": config_hash, "progress": state.state(),
                "model": _cpu_state(net), "teacher": _cpu_state(teacher.net) if teacher is not None else None,
                "optimizer": optimizer.state_dict() if optimizer is not None else None,
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "rng": {"torch": torch.get_rng_state(), "python": [rs[0], list(rs[1]), rs[2]]},
                "metrics": state.metrics})
            write_text(out / METRICS, _metrics_csv(state.metrics))
        ddp.barrier(ctx)

    def record(row: dict[str, Any]) -> None:
        state.metrics.append(row)
        if tb is not None and row["kind"] == "train":
            tb.add_scalar("train/loss", row["loss"], row["global_step"])
            tb.add_scalar("train/lr", row["lr"], row["global_step"])
        elif tb is not None:
            tb.add_scalar(f"{row['split']}/top1_{row['arch']}", row["top1"], row["global_step"])

    started, cpu_started = time.perf_counter(), time.process_time()
    beat = started  # without a progress bar (a log file), a line every HEARTBEAT_S seconds shows the run is alive
    while state.phase < len(config.phases):
        phase = config.phases[state.phase]
        n_steps = steps_per_epoch(phase, len(splits.train), t.batch_size)
        fresh_phase = state.epoch == 0 and state.step == 0
        if fresh_phase and phase.sort_channels:
            net.sort_channels()
        kd_weight = t.kd_weight if phase.kd_weight is None else phase.kd_weight
        inplace_kd = kd_weight > 0 and phase.kd_source == "inplace"
        if kd_weight > 0 and not inplace_kd and teacher is None:
            teacher = FrozenTeacher.copy_of(net, calib, t.bn_calib_images)
        optimizer = make_optimizer(net, config, phase)
        scheduler = make_scheduler(optimizer, phase, phase.epochs * n_steps)
        if ckpt is not None and ckpt["optimizer"] is not None and not fresh_phase:
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
        ckpt = None
        bar = _progress_bar(progress and ctx.is_main, phase.epochs * n_steps, phase.name)
        bar.update(state.epoch * n_steps + state.step)
        while state.epoch < phase.epochs:
            loader = make_loader(splits.train, t.batch_size, shuffle=True, seed=config.seed,
                                 epoch=state.phase * 100_003 + state.epoch, start_batch=state.step,
                                 max_batches=n_steps, drop_last=True, rank=ctx.rank, world_size=ctx.world_size,
                                 workers=t.workers, pin_memory=cuda)
            tick, seen = time.perf_counter(), 0
            for x, y in loader:
                # One seed per step, shared by all ranks: the same subnets, resolution and augmentation draws
                # (each rank uses its slice of the global batch's); dropout masks are drawn per rank.
                rng = np.random.default_rng([config.seed, state.global_step])
                gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
                torch.manual_seed(int(rng.integers(2**62)) + ctx.rank)
                x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
                if config.data.augment:
                    x = augment_batch(x, gen, pad=splits.pad, flip=splits.flip, offset=ctx.rank * len(y),
                                      total=t.batch_size)
                archs = step_subnets(space, phase, rng)
                inputs = step_inputs(x, archs)
                with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=cuda):
                    soft = None
                    if kd_weight > 0 and not inplace_kd:  # the frozen teacher at the step's largest resolution
                        soft = teacher(inputs[max(inputs)]).float()
                    net.train()
                    optimizer.zero_grad(set_to_none=True)
                    loss_sum = 0.0
                    for i, arch in enumerate(archs):
                        net.set_active(arch)
                        logits = net(inputs[arch.r]).float()
                        loss = F.cross_entropy(logits, y, label_smoothing=t.label_smoothing)
                        if soft is not None:
                            loss = loss + kd_weight * distillation_loss(logits, soft)
                        (loss / len(archs)).backward()
                        loss_sum += float(loss.detach())
                        if inplace_kd and i == 0:  # the sandwich's largest: the teacher of the step's others
                            soft = logits.detach()
                net.set_active(space.largest())
                ddp.average_gradients(params, ctx)
                optimizer.step()
                scheduler.step()
                state.step += 1
                state.global_step += 1
                seen += len(y) * ctx.world_size * len(archs)
                bar.update(1)
                if state.global_step % t.log_every == 0 or state.step == n_steps:
                    now = time.perf_counter()
                    speed = seen / max(now - tick, 1e-9)
                    tick, seen = now, 0
                    if not progress and ctx.is_main and now - beat >= HEARTBEAT_S:
                        beat = now
                        log(f"phase {phase.name} epoch {state.epoch + 1}/{phase.epochs} step {state.step}/{n_steps} "
                            f"(global {state.global_step}): loss {loss_sum / len(archs):.3f}, {speed:.0f} img/s, "
                            f"{now - started:.0f} s")
                    bar.set_postfix(epoch=state.epoch, loss=f"{loss_sum / len(archs):.3f}",
                                    img_s=f"{speed:.0f}")
                    record({"kind": "train", "phase": phase.name, "epoch": state.epoch, "step": state.step,
                            "global_step": state.global_step, "loss": round(loss_sum / len(archs), 5),
                            "lr": round(scheduler.get_last_lr()[0], 7), "img_per_s": round(speed, 1),
                            "elapsed_s": round(time.perf_counter() - started, 2)})
                if state.global_step % t.checkpoint_every == 0:
                    save_checkpoint()
                if stop_at_step is not None and state.global_step >= stop_at_step:
                    bar.close()
                    ddp.teardown(ctx)
                    return out
            state.epoch += 1
            state.step = 0
        bar.close()
        # Phase end: BN-recalibrated validation of the phase's extremes (largest last, so the stored running
        # statistics are the largest net's), then a checkpoint that a resume starts the next phase from.
        largest, smallest = phase_extremes(space, phase)
        found = {}
        for name, arch in (("smallest", smallest), ("largest", largest)):
            recalibrate_bn(net, arch, calib, t.bn_calib_images)
            found[name] = evaluate(net, arch, val)
            record({"kind": "eval", "phase": phase.name, "global_step": state.global_step, "arch": name,
                    "split": "val", "top1": round(found[name], 5),
                    "elapsed_s": round(time.perf_counter() - started, 2)})
        if ctx.is_main:
            log(f"phase {phase.name} done at step {state.global_step} ({time.perf_counter() - started:.0f} s): "
                f"val top-1 largest {found['largest']:.4f}, smallest {found['smallest']:.4f}")
        state.phase += 1
        state.epoch = state.step = 0
        optimizer = scheduler = None
        save_checkpoint()

    summary: dict[str, Any] = {}
    if t.final_eval:
        test = make_loader(splits.test, 500, shuffle=False)
        for name, arch in (("smallest", space.smallest()), ("largest", space.largest())):
            recalibrate_bn(net, arch, calib, t.bn_calib_images)
            summary[name] = {"arch": arch.to_dict(), "val_top1": evaluate(net, arch, val),
                             "test_top1": evaluate(net, arch, test)}
            record({"kind": "eval", "phase": "final", "global_step": state.global_step, "arch": name,
                    "split": "test", "top1": round(summary[name]["test_top1"], 5)})
    ddp.average_buffers(net, ctx)
    if ctx.is_main:
        save_torch(out / WEIGHTS, _cpu_state(net))  # CPU tensors: the file loads anywhere
        write_text(out / METRICS, _metrics_csv(state.metrics))
        write_run_info(out, RunInfo(config.name, space.to_dict(), config.data.to_dict(), finished=True,
                                    checkpoint_hash=sha256_file(out / WEIGHTS), config_hash=config_hash,
                                    preprocessing=splits.preprocessing,
                                    extra={"steps": state.global_step,
                                           "train_seconds": round(time.perf_counter() - started, 1),
                                           "cpu_seconds": round(time.process_time() - cpu_started, 1),
                                           "world_size": ctx.world_size, "final": summary}))
        log(f"finished {out}: " + ", ".join(f"{k} test top-1 {v['test_top1']:.4f}" for k, v in summary.items()))
    if tb is not None:
        tb.close()
    ddp.barrier(ctx)
    ddp.teardown(ctx)
    return out


__all__ = ["train", "build_space", "sample_subnets", "step_subnets", "step_inputs", "phase_choices", "phase_extremes",
           "distillation_loss", "make_optimizer", "make_scheduler", "FrozenTeacher"]
