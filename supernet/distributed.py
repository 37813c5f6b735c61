"""Data-parallel plumbing for `torchrun --nproc-per-node K -m nas train ...`: process group (gloo on CPU, NCCL on
CUDA), device choice, gradient averaging."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job: `rank` of `world_size`, and the device it computes on."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> DistContext:
    """Join the torchrun job described by the environment (RANK, WORLD_SIZE, LOCAL_RANK), if any, and pick a device
    (`auto`: CUDA where present, else CPU)."""
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        from supernet.config import ConfigError

        raise ConfigError("field 'train.device' = 'cuda' but no CUDA device is available; use auto or cpu")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda and local >= (gpus := torch.cuda.device_count()):
        from supernet.config import ConfigError

        raise ConfigError(f"torchrun started local rank {local} but this machine has {gpus} CUDA device(s): use "
                          f"--nproc-per-node {gpus} or fewer, or set field 'train.device' to cpu")
    dev = torch.device(f"cuda:{local}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return DistContext(rank, world, dev)


def teardown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def average_gradients(params: list[nn.Parameter], ctx: DistContext) -> None:
    """Average gradients over processes with one flat all-reduce.

    Every rank runs the same subnets each step (they are drawn from a seed shared by all ranks), so the set of
    parameters with a gradient is the same everywhere; parameters without one stay without (as in one process).

    Why not the DDP wrapper: each step runs several subnets, each touching a different subset of the weights, and
    accumulates their gradients; DDP's per-forward unused-parameter bookkeeping does not fit that pattern, while
    one all-reduce of the accumulated gradients is exactly the synchronisation DDP would perform.
    """
    if not ctx.distributed:
        return
    params = [p for p in params if p.grad is not None]
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= ctx.world_size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def average_buffers(module: nn.Module, ctx: DistContext) -> None:
    """Average floating-point buffers (BN running statistics) over processes so every rank holds the same model."""
    if not ctx.distributed:
        return
    for b in module.buffers():
        if b.is_floating_point():
            dist.all_reduce(b)
            b /= ctx.world_size


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()
