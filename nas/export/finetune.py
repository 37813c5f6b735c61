"""Fine-tuning a searched subnet before export, as OFA ships its specialised nets: knowledge distillation from the
supernet's largest net, for a step budget given as a share of the supernet's own training.

    steps = finetune_steps("10%", supernet_steps=960)       # -> 96
    teacher = FrozenTeacher.copy_of(run.net, bn_loader, 2000)   # supernet.train's, BN recalibrated at each r
    report = finetune_subnet(run.net, arch, splits.train, steps=steps, teacher=teacher,
                             recipe=FinetuneRecipe.from_config(run.config))

The subnet is trained THROUGH THE SUPERNET with its arch fixed (`net.activated(arch)`) and extracted afterwards, on
channels_last batches: at the supernet's training speed (the extracted net on NCHW batches trains 1.5-2× slower on a
CPU; on channels_last batches it is as fast for searched-size nets: BENCHMARKS.md, "export-finetune"), training
exactly the weights the supernet's subnet computes with. The optimiser has no weight decay, so only the weights
the subnet uses move (slices it does not use get zero gradients, which neither SGD nor AdamW turns into an
update); the supernet's other subnets are left as they were. The loss is the supernet
recipe's: label-smoothed cross-entropy plus `kd_weight` × soft cross-entropy against the frozen largest net at the
resolution the images were loaded at (28 px for Fashion-MNIST whatever the subnet's own: the largest net's best,
as the demo recipe's in-place distillation teaches at the largest resolution; streamed image folders are loaded at
the subnet's resolution), temperature 1.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from nas.export.errors import ExportError
from supernet.arch import ArchConfig
from supernet.data import augment_batch, make_loader
from supernet.evaluate import resize_to
from supernet.network import Supernet
from supernet.train import distillation_loss

Progress = Callable[[float, str], None]
_SHARE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
HISTORY_POINTS = 10  # loss / training top-1 rows kept per fine-tune


MAX_FINETUNE_STEPS = 1_000_000  # far past any supernet's own training: a larger number is a typo


def finetune_steps(budget: int | str | None, supernet_steps: int | None) -> int:
    """The number of fine-tuning steps `budget` asks for: an integer number of steps (>= 0), or a share of the
    supernet's training steps written as 'P%' (0 < P <= 100), rounded to the nearest step (at least 1).
    Raises ExportError naming the field 'finetune'."""
    if budget is None or budget == 0:
        return 0
    if isinstance(budget, bool):
        raise ExportError(f"field 'finetune' must be a number of steps or a share like '10%', got {budget!r}")
    text = str(budget).strip()
    if isinstance(budget, int) or text.isdigit():
        steps = int(text)
        if not 0 <= steps <= MAX_FINETUNE_STEPS:
            raise ExportError(f"field 'finetune' must be >= 0 and at most {MAX_FINETUNE_STEPS:,} steps, got {budget}")
        return steps
    m = _SHARE.match(text)
    if m is None:
        raise ExportError(f"field 'finetune' must be a number of steps or a share of the supernet's training steps "
                          f"like '10%', got {budget!r}")
    share = float(m.group(1))
    if not 0 < share <= 100:
        raise ExportError(f"field 'finetune' must be a share above 0% and at most 100%, got {budget!r}")
    if not supernet_steps:
        raise ExportError("field 'finetune': the run records no number of training steps (run.json 'steps'), so a "
                          "share cannot be resolved; give a number of steps")
    return max(1, round(supernet_steps * share / 100))


@dataclass(frozen=True)
class FinetuneRecipe:
    """How a subnet is fine-tuned: the supernet recipe's optimiser, batch, label smoothing, distillation weight and
    augmentation, at the learning rate of its last (elastic) phase, cosine to 0 after a short warm-up."""

    optimizer: str = "sgd"
    lr: float = 0.01
    batch_size: int = 128
    label_smoothing: float = 0.1
    kd_weight: float = 1.0
    momentum: float = 0.9
    nesterov: bool = True
    augment: bool = False
    warmup_steps: int = 5

    @classmethod
    def from_config(cls, config: Any) -> "FinetuneRecipe":
        """The recipe of a supernet's ExperimentConfig (run.config)."""
        t, last = config.train, config.phases[-1]
        return cls(optimizer=t.optimizer, lr=last.lr, batch_size=t.batch_size, label_smoothing=t.label_smoothing,
                   kd_weight=t.kd_weight if t.kd_weight > 0 else 1.0, momentum=t.momentum, nesterov=t.nesterov,
                   augment=bool(config.data.augment))

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _optimizer(params: list[nn.Parameter], recipe: FinetuneRecipe) -> torch.optim.Optimizer:
    # No weight decay: it would shrink the slices this subnet does not use (and with them the supernet's others).
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=0.0)
    return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum,
                           nesterov=recipe.nesterov and recipe.momentum > 0, weight_decay=0.0)


def finetune_subnet(student: nn.Module, arch: ArchConfig, train: Dataset, *, steps: int, recipe: FinetuneRecipe,
                    teacher: Callable[[torch.Tensor], torch.Tensor], seed: int = 0, pad: int = 0, flip: bool = False,
                    progress: Progress | None = None) -> dict[str, Any]:
    """Train `arch` in place for `steps` steps of `recipe.batch_size` images at `arch.r` px, distilling from
    `teacher` (images to logits, run without gradients: supernet.train.FrozenTeacher, the supernet's frozen largest
    net with BN statistics at the resolution it is fed: the batch as loaded when that is larger than `arch.r`).

    `student`: a Supernet (the arch is activated for the steps and the previous active arch restored), or a static
    net of that arch (the slower path, kept for the speed benchmark). Leaves the student in eval mode; its BN
    statistics are the training batches' running averages, so recalibrate before evaluating.
    Returns {steps, seconds, steps_per_s, images, history: [{step, loss, train_top1}]}.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ExportError(f"field 'finetune' must resolve to a whole number of steps >= 0, got {steps!r}")
    if steps == 0:
        return {"steps": 0, "seconds": 0.0, "steps_per_s": None, "images": 0, "history": []}
    device = next(student.parameters()).device
    is_supernet = isinstance(student, Supernet)
    params = [p for p in student.parameters() if p.requires_grad]
    opt = _optimizer(params, recipe)
    warmup = min(recipe.warmup_steps, steps // 10)

    def factor(s: int) -> float:
        if s < warmup:
            return (s + 1) / (warmup + 1)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warmup) / max(1, steps - warmup))))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    per_epoch = len(train) // recipe.batch_size
    if per_epoch < 1:
        raise ExportError(f"field 'finetune': batch {recipe.batch_size} is larger than the {len(train)} training "
                          f"images")
    every = max(1, steps // HISTORY_POINTS)
    history: list[dict[str, float]] = []
    loss_sum, correct, seen, step = 0.0, 0, 0, 0
    previous = student.active if is_supernet else None
    if is_supernet:
        student.set_active(arch)
    started = time.perf_counter()
    try:
        student.train()
        epoch = 0
        while step < steps:
            loader = make_loader(train, recipe.batch_size, shuffle=True, seed=seed, epoch=epoch, drop_last=True,
                                 max_batches=min(per_epoch, steps - step))
            for x, y in loader:
                rng = np.random.default_rng([seed, step])
                gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
                torch.manual_seed(int(rng.integers(2**62)))  # dropout
                x, y = x.to(device), torch.as_tensor(y).to(device)
                if recipe.augment:
                    x = augment_batch(x, gen, pad=pad, flip=flip)
                with torch.no_grad():  # the teacher at the size the images were loaded at, if larger: its best
                    soft = teacher(resize_to(x, max(arch.r, x.shape[-1])).contiguous(
                        memory_format=torch.channels_last)).float()
                x = resize_to(x, arch.r).contiguous(memory_format=torch.channels_last)
                logits = student(x).float()
                loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
                if recipe.kd_weight > 0:
                    loss = loss + recipe.kd_weight * distillation_loss(logits, soft)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                loss_sum += float(loss.detach()) * len(y)
                correct += int((logits.argmax(1) == y).sum())
                seen += len(y)
                if step % every == 0 or step == steps:
                    history.append({"step": step, "loss": round(loss_sum / seen, 5),
                                    "train_top1": round(correct / seen, 5)})
                    loss_sum, correct, seen = 0.0, 0, 0
                    if progress is not None:  # as often as a history row: a log gets ten lines, not one a step
                        progress(step / steps, f"fine-tuning step {step}/{steps}, loss {history[-1]['loss']:.3f}")
            epoch += 1
    finally:
        if is_supernet:
            student.active = previous
        student.eval()
    seconds = time.perf_counter() - started
    return {"steps": step, "seconds": round(seconds, 2), "steps_per_s": round(step / max(seconds, 1e-9), 3),
            "images": step * recipe.batch_size, "history": history}


__all__ = ["FinetuneRecipe", "finetune_steps", "finetune_subnet"]
