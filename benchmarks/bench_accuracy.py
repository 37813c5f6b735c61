"""Once-for-all claim: test top-1 of subnets taken from the trained supernet (largest, smallest, N random; BN
recalibrated) beside the same arch trained from scratch for the same number of steps and batch size.

    python benchmarks/bench_accuracy.py [--run runs/fashion-mnist] [--random 5] [--seed 0] [--no-scratch]
                                        [--only largest,smallest,random]

Train the run first: `nas train experiments/fashion-mnist.yaml` (the demo recipe) or fashion-mnist-full.yaml.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks._report import table, write_section  # noqa: E402
from supernet import ArchConfig, Supernet  # noqa: E402
from supernet.config import PhaseConfig  # noqa: E402
from supernet.counting import count_macs  # noqa: E402
from supernet.data import augment_batch, make_loader  # noqa: E402
from supernet.evaluate import evaluate, recalibrate_bn, resize_to  # noqa: E402
from supernet.run import TrainedRun, load_run  # noqa: E402
from supernet.train import make_optimizer, make_scheduler, steps_per_epoch  # noqa: E402


def recipe_steps(run: TrainedRun) -> int:
    n = len(run.splits().train)
    return sum(p.epochs * steps_per_epoch(p, n, run.config.train.batch_size) for p in run.config.phases)


def train_from_scratch(run: TrainedRun, arch: ArchConfig, steps: int, seed: int) -> float:
    """Test top-1 of `arch` trained alone (random init, the recipe's optimiser, batch, augmentation and first LR)."""
    cfg, splits = run.config, run.splits()
    torch.manual_seed(seed)
    net = Supernet(run.space).extract(arch)
    phase = PhaseConfig(name="scratch", lr=cfg.phases[0].lr, warmup_steps=cfg.phases[0].warmup_steps)
    opt = make_optimizer(net, cfg, phase)
    sched = make_scheduler(opt, phase, steps)
    per_epoch = len(splits.train) // cfg.train.batch_size
    done, epoch = 0, 0
    net.train()
    while done < steps:
        for x, y in make_loader(splits.train, cfg.train.batch_size, shuffle=True, seed=seed, epoch=epoch,
                                max_batches=min(per_epoch, steps - done), drop_last=True):
            gen = torch.Generator().manual_seed(seed * 7919 + done)
            if cfg.data.augment:
                x = augment_batch(x, gen, pad=splits.pad, flip=splits.flip)
            loss = F.cross_entropy(net(resize_to(x, arch.r)), y, label_smoothing=cfg.train.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            done += 1
        epoch += 1
    calib = make_loader(splits.train, 200, shuffle=True, seed=cfg.seed + 1)
    recalibrate_bn(net, arch, calib, 2000)
    return evaluate(net, arch, make_loader(splits.test, 500, shuffle=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/fashion-mnist")
    ap.add_argument("--random", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-scratch", action="store_true", help="skip the from-scratch twins (fast)")
    ap.add_argument("--only", default=None,
                    help="comma-separated subset of largest, smallest, random (e.g. smallest,random: the largest's "
                         "from-scratch twin is the slowest to train)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    run = load_run(args.run)
    splits = run.splits()
    calib = make_loader(splits.train, 200, shuffle=True, seed=run.config.seed + 1)
    test = make_loader(splits.test, 500, shuffle=False)
    archs = {"largest": run.space.largest(), "smallest": run.space.smallest()}
    archs.update({f"random {i}": a for i, a in enumerate(run.space.sample_many(args.random, args.seed))})
    if args.only:
        wanted = {w.strip() for w in args.only.split(",")}
        if not wanted <= {"largest", "smallest", "random"}:
            ap.error(f"--only takes largest, smallest and random, got {args.only!r}")
        archs = {name: a for name, a in archs.items() if name.split()[0] in wanted}
    steps = recipe_steps(run)
    rows = []
    for name, arch in archs.items():
        recalibrate_bn(run.net, arch, calib, 2000)
        row = {"subnet": name, "MMACs": float(count_macs(run.space, [arch])[0]) / 1e6, "r": arch.r,
               "supernet top-1": evaluate(run.net, arch, test)}
        if not args.no_scratch:
            start = time.perf_counter()
            row["scratch top-1"] = train_from_scratch(run, arch, steps, args.seed)
            row["supernet - scratch (pp)"] = 100 * (row["supernet top-1"] - row["scratch top-1"])
            print(f"{name}: scratch {time.perf_counter() - start:.0f} s", file=sys.stderr)
        rows.append(row)
        print(row, file=sys.stderr)
    body = (f"Run `{args.run}` (recipe `{run.config.name}`, {steps} steps of batch {run.config.train.batch_size}, "
            f"checkpoint {run.checkpoint_hash[:12]}); test split, BN recalibrated on 2000 training images. "
            f"From-scratch twins: the same arch alone, {steps} steps, same batch/optimiser/augmentation, "
            f"one cosine schedule from the first phase's LR.\n\n" + table(rows))
    print(body)
    if not args.no_write:
        write_section(f"accuracy-{run.config.name}", f"Accuracy after `{run.config.name}`: supernet subnets vs "
                      "from scratch", body)


if __name__ == "__main__":
    main()
