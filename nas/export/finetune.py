"""Fine-tuning an extracted subnet for a few epochs with knowledge distillation from the supernet's largest net.

The loss is OFA's: label-smoothed cross-entropy plus `kd_ratio` × soft cross-entropy against the teacher's
output (temperature 1), with SGD (Nesterov momentum 0.9, cosine schedule, no weight decay on BN and biases).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from supernet.data import augment_batch, make_loader
from supernet.evaluate import resize_to

Progress = Callable[[float, str], None]


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of −Σ p_teacher · log softmax(student)."""
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(1).mean()


def _param_groups(net: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for module in net.modules():
        for name, p in module.named_parameters(recurse=False):
            is_norm = isinstance(module, (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm))
            (no_decay if is_norm or name == "bias" else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def finetune(student: nn.Module, teacher: Callable[[torch.Tensor], torch.Tensor], train: Dataset, r: int, *,
             epochs: int, batch_size: int = 128, lr: float = 0.01, weight_decay: float = 3e-5,
             kd_ratio: float = 1.0, label_smoothing: float = 0.1, pad: int = 0, flip: bool = False, seed: int = 0,
             max_batches: int | None = None, progress: Progress | None = None) -> list[dict[str, float]]:
    """Train `student` in place for `epochs` epochs on `train` at `r` px, distilling from `teacher` (a function
    from images to logits, run without gradients). Returns per-epoch mean loss and training top-1."""
    if epochs <= 0:
        return []
    device = next(student.parameters()).device
    opt = torch.optim.SGD(_param_groups(student, weight_decay), lr=lr, momentum=0.9, nesterov=True)
    steps_per_epoch = len(make_loader(train, batch_size, shuffle=True, seed=seed, drop_last=True,
                                      max_batches=max_batches))
    total = max(1, epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    gen = torch.Generator().manual_seed(seed)
    history = []
    step = 0
    for epoch in range(epochs):
        student.train()
        loss_sum, correct, seen = 0.0, 0, 0
        loader = make_loader(train, batch_size, shuffle=True, seed=seed, epoch=epoch, drop_last=True,
                             max_batches=max_batches)
        for x, y in loader:
            x = resize_to(augment_batch(x, gen, pad=pad, flip=flip), r).to(device)
            y = torch.as_tensor(y).to(device)
            with torch.no_grad():
                soft = F.softmax(teacher(x).float(), dim=1)
            logits = student(x)
            loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
            if kd_ratio > 0:
                loss = loss + kd_ratio * soft_cross_entropy(logits, soft)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            if progress is not None:
                progress(step / total, f"fine-tuning epoch {epoch + 1}/{epochs}")
        history.append({"epoch": epoch + 1, "loss": loss_sum / max(1, seen), "train_top1": correct / max(1, seen)})
    student.eval()
    return history
