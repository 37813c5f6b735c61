"""Once-for-all claim: test top-1 of subnets taken from the trained supernet (largest, smallest, N random; BN
recalibrated) beside the same arch trained from scratch for the same number of steps and batch size.

    python benchmarks/bench_accuracy.py [--run runs/fashion-mnist] [--random 5] [--seed 0] [--no-scratch]
                                        [--only largest,smallest,random,NAME] [--arch NAME=ARCH ...]
                                        [--device cpu|cuda] [--jobs N] [--from-checkpoint] [--twins FILE.jsonl]

Train the run first: `nas train experiments/fashion-mnist.yaml` (the demo recipe) or fashion-mnist-full.yaml.
`--twins FILE.jsonl` keeps each finished twin (keyed by recipe, arch, steps and seed) and reuses it on the next
call, so a stopped benchmark resumes, and twins trained on a GPU beside an unfinished run (`--from-checkpoint`;
they need the recipe, not the weights) are reused once the run has finished. `--jobs N` trains N twins at once
in separate processes (a GPU left mostly idle by one small net; on 2 CPU cores keep 1). `--arch NAME=ARCH` adds a
named arch (an arch JSON file, or an exported bundle's folder: its arch.json), e.g. the nets a demo shipped;
`--only NAME` keeps only it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks._report import table, write_section  # noqa: E402
from supernet import ArchConfig, Supernet  # noqa: E402
from supernet._io import write_text  # noqa: E402
from supernet.config import PhaseConfig  # noqa: E402
from supernet.counting import count_macs  # noqa: E402
from supernet.data import augment_batch, make_loader  # noqa: E402
from supernet.errors import NasError  # noqa: E402
from supernet.evaluate import evaluate, recalibrate_bn, resize_to  # noqa: E402
from supernet.run import TrainedRun, load_run  # noqa: E402
from supernet.train import make_optimizer, make_scheduler, steps_per_epoch  # noqa: E402


def recipe_steps(run: TrainedRun) -> int:
    n = len(run.splits().train)
    return sum(p.epochs * steps_per_epoch(p, n, run.config.train.batch_size) for p in run.config.phases)


def train_from_scratch(run: TrainedRun, arch: ArchConfig, steps: int, seed: int, device: str = "cpu",
                       label: str = "") -> float:
    """Test top-1 of `arch` trained alone (random init, the recipe's optimiser, batch, augmentation and first LR).

    On CUDA it trains as `nas train` does there: channels_last, bf16 autocast."""
    cfg, splits = run.config, run.splits()
    dev = torch.device(device)
    torch.manual_seed(seed)
    net = Supernet(run.space).extract(arch).to(dev, memory_format=torch.channels_last)
    phase = PhaseConfig(name="scratch", lr=cfg.phases[0].lr, warmup_steps=cfg.phases[0].warmup_steps)
    opt = make_optimizer(net, cfg, phase)
    sched = make_scheduler(opt, phase, steps)
    per_epoch = len(splits.train) // cfg.train.batch_size
    done, epoch, start = 0, 0, time.perf_counter()
    net.train()
    while done < steps:
        for x, y in make_loader(splits.train, cfg.train.batch_size, shuffle=True, seed=seed, epoch=epoch,
                                max_batches=min(per_epoch, steps - done), drop_last=True):
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            gen = torch.Generator().manual_seed(seed * 7919 + done)
            if cfg.data.augment:
                x = augment_batch(x, gen, pad=splits.pad, flip=splits.flip)
            x = resize_to(x, arch.r).contiguous(memory_format=torch.channels_last)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                loss = F.cross_entropy(net(x), y, label_smoothing=cfg.train.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            done += 1
            if done % 1000 == 0:
                print(f"{label}: step {done}/{steps}, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        epoch += 1
    calib = make_loader(splits.train, 200, shuffle=True, seed=cfg.seed + 1)
    recalibrate_bn(net, arch, calib, 2000)
    return evaluate(net, arch, make_loader(splits.test, 500, shuffle=False))


def _twin_job(run_dir: str, from_checkpoint: bool, arch: dict, steps: int, seed: int, device: str,
              label: str) -> tuple[float, float]:
    """One twin in a worker process: (test top-1, seconds)."""
    torch.set_num_threads(int(os.environ.get("TWIN_THREADS", "2")))
    run = load_run(run_dir, "cpu", from_checkpoint=from_checkpoint)  # the recipe and data; weights stay unused
    start = time.perf_counter()
    top1 = train_from_scratch(run, ArchConfig.from_dict(arch), steps, seed, device, label)
    return top1, time.perf_counter() - start


def twin_key(run: TrainedRun, arch: ArchConfig, steps: int, seed: int) -> str:
    """What a twin's training depends on (`train_from_scratch`): the space, the data, the optimiser and the first
    phase's LR schedule, the arch, steps and seed; not the recipe's other phases, so a twin measured once serves
    every recipe that trains its arch under the same settings."""
    cfg, t, first = run.config, run.config.train, run.config.phases[0]
    settings = {"space": run.space.to_dict(), "data": cfg.data.to_dict(), "batch_size": t.batch_size,
                "optimizer": t.optimizer, "weight_decay": t.weight_decay, "momentum": t.momentum,
                "nesterov": t.nesterov, "label_smoothing": t.label_smoothing, "lr": first.lr,
                "warmup_steps": first.warmup_steps}
    return json.dumps({"settings": settings, "arch": arch.to_dict(), "steps": steps, "seed": seed}, sort_keys=True)


def read_twins(path: Path | None) -> dict[str, dict]:
    if path is None or not path.is_file():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            out[rec["key"]] = rec
    return out


def twin_arch(rec: dict) -> dict:
    """The arch (as a dict) a twins-file record was trained for (older records hold it only in their key)."""
    return rec.get("arch") or json.loads(rec["key"])["arch"]


def append_twin(path: Path | None, rec: dict) -> None:
    """One finished twin added as a JSON line; the file is rewritten whole (a killed benchmark keeps the twins
    it finished and never leaves half a line)."""
    if path is None:
        return
    write_text(path, (path.read_text() if path.is_file() else "") + json.dumps(rec) + "\n")


def named_arch(spec: str, run: TrainedRun) -> tuple[str, ArchConfig]:
    """`NAME=PATH` (an arch JSON, or a bundle folder holding arch.json) as (NAME, the arch in the run's space)."""
    from nas.export.bundle import as_arch

    name, sep, path = spec.partition("=")
    if not sep or not name.strip() or not path:
        raise ValueError(f"--arch takes NAME=PATH (an arch JSON or a bundle folder), got {spec!r}")
    p = Path(path)
    return name.strip(), as_arch(p / "arch.json" if p.is_dir() else p, run.space)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/fashion-mnist")
    ap.add_argument("--random", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-scratch", action="store_true", help="skip the from-scratch twins (fast)")
    ap.add_argument("--only", default=None,
                    help="comma-separated subset of largest, smallest, random and the --arch names (e.g. "
                         "smallest,random: the largest's from-scratch twin is the slowest to train)")
    ap.add_argument("--arch", action="append", default=[], metavar="NAME=ARCH",
                    help="also this arch: an arch JSON file or a bundle folder (repeatable)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N: where subnets are evaluated and twins trained")
    ap.add_argument("--jobs", type=int, default=1, help="twins trained at once, each in its own process")
    ap.add_argument("--from-checkpoint", action="store_true", help="the run's latest checkpoint (an unfinished run)")
    ap.add_argument("--twins", type=Path, default=None, help="JSON lines of finished twins: reused, appended to")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if args.jobs < 1:
        ap.error(f"--jobs must be >= 1, got {args.jobs}")

    run = load_run(args.run, args.device, from_checkpoint=args.from_checkpoint)
    splits = run.splits()
    calib = make_loader(splits.train, 200, shuffle=True, seed=run.config.seed + 1)
    test = make_loader(splits.test, 500, shuffle=False)
    archs = {"largest": run.space.largest(), "smallest": run.space.smallest()}
    archs.update({f"random {i}": a for i, a in enumerate(run.space.sample_many(args.random, args.seed))})
    try:
        named = dict(named_arch(spec, run) for spec in args.arch)
    except (ValueError, NasError) as exc:
        ap.error(str(exc))
    archs.update(named)
    if args.only:
        wanted = {w.strip() for w in args.only.split(",")}
        if not wanted <= {"largest", "smallest", "random", *archs}:
            ap.error(f"--only takes largest, smallest, random, 'random N' and the --arch names, got {args.only!r}")
        archs = {name: a for name, a in archs.items() if name in wanted or name.split()[0] in wanted}
    steps = recipe_steps(run)
    cached = read_twins(args.twins)
    twins: dict[str, tuple[float, float]] = {}
    todo = {}
    for name, arch in archs.items():
        rec = cached.get(twin_key(run, arch, steps, args.seed))
        if rec is not None:
            twins[name] = (rec["top1"], rec["seconds"])
        elif not args.no_scratch:
            todo[name] = arch
    if todo:
        # Twins first (the long part), the slowest first so parallel jobs end together; each one saved as it ends
        order = sorted(todo, key=lambda n: -float(count_macs(run.space, [todo[n]])[0]))
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
            futures = {pool.submit(_twin_job, args.run, args.from_checkpoint, todo[n].to_dict(), steps, args.seed,
                                   args.device, n): n for n in order}
            for fut in as_completed(futures):
                name = futures[fut]
                top1, seconds = fut.result()
                twins[name] = (top1, seconds)
                append_twin(args.twins, {"key": twin_key(run, todo[name], steps, args.seed), "name": name,
                                         "top1": top1, "seconds": seconds, "device": args.device,
                                         "arch": todo[name].to_dict()})
                print(f"{name}: scratch {top1:.4f} in {seconds:.0f} s", file=sys.stderr, flush=True)
    rows = []
    for name, arch in archs.items():
        recalibrate_bn(run.net, arch, calib, 2000)
        row = {"subnet": name, "MMACs": float(count_macs(run.space, [arch])[0]) / 1e6, "r": arch.r,
               "supernet top-1": evaluate(run.net, arch, test)}
        if name in twins:
            row["scratch top-1"] = twins[name][0]
            row["supernet - scratch (pp)"] = 100 * (row["supernet top-1"] - row["scratch top-1"])
        rows.append(row)
        print(row, file=sys.stderr)
    columns = list(dict.fromkeys(c for row in rows for c in row))  # twins may be missing for some rows
    where = (f"checkpoint at {run.info.extra.get('checkpoint_progress')}" if args.from_checkpoint else "final weights")
    body = (f"Run `{args.run}` (recipe `{run.config.name}`, {steps} steps of batch {run.config.train.batch_size}, "
            f"{where}, {run.checkpoint_hash[:12]}); test split, BN recalibrated on 2000 training images. "
            f"From-scratch twins: the same arch alone, {steps} steps, same batch/optimiser/augmentation, "
            f"one cosine schedule from the first phase's LR.\n\n" + table(rows, columns))
    print(body)
    if not args.no_write:
        write_section(f"accuracy-{run.config.name}", f"Accuracy after `{run.config.name}`: supernet subnets vs "
                      "from scratch", body)


if __name__ == "__main__":
    main()
