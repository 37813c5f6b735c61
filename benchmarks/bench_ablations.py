"""Supernet recipe ablations at the demo's scale: where the small subnets lose their points against their twins.

    python benchmarks/bench_ablations.py teacher-bn --run RUN [--images 5000]
    python benchmarks/bench_ablations.py branch --teacher-checkpoint CKPT --recipe VARIANT.yaml --out DIR
    python benchmarks/bench_ablations.py table --runs NAME=DIR ... --twins TWINS.jsonl [--random 3] [--arch N=A]
        [--bn-images 500 2000 10000]
    python benchmarks/bench_ablations.py step-cost RECIPE.yaml ... [--steps 24] [--rounds 2]

`teacher-bn`: the frozen teacher of a trained run (its checkpoint's `teacher`) at each of the space's resolutions,
top-1 and NLL on the test split, with (a) BN statistics recalibrated once at the largest resolution (what
`nas train` did before the fix), (b) the batch's own statistics (OFA's `teacher_model.train()`, batches of 64: a
rank's share of the demo's 128 on two processes), (c) statistics recalibrated at that resolution (the fix).

`branch`: a run folder that resumes from a teacher-phase-end checkpoint (progress: phase 1, step 0) with a variant
recipe whose teacher phase, data and train settings equal the checkpoint's own recipe: only the variant's
elastic phases are trained (`nas train VARIANT.yaml --out DIR --resume`). The teacher phase is deterministic
(the same weights to the bit in every run of it), so a branched run ends as a run of the variant from scratch
would. The checkpoint's recipe hash is rewritten to the variant's: a benchmarking shortcut, never for users.

`table`: each run's smallest subnet and `--random` random subnets (seed 0, as `bench_accuracy.py` draws them; the
draw depends on `--random`: `sample_many(2, 0)[1]` is not `sample_many(3, 0)[1]`) and any `--arch NAME=ARCH`,
BN recalibrated on 2,000 training images, test top-1, beside their twins from the JSON lines that
`bench_accuracy.py --twins` (or its `train_from_scratch`) wrote; prints a markdown table with the mean gaps.

`step-cost`: what each recipe's training costs, where the shared machine's wall time cannot say: `--steps` steps
drawn evenly over each phase (their real resolution and subnets, replayed from the recipe's seeds as
`bench_sampling.py` does), trained as `nas train` trains them (teacher forward, each subnet's forward and
backward, AdamW step) on one thread, CPU seconds per step per phase, interleaved over `--rounds`; then the
recipe's estimated CPU seconds (steps x median cost per phase), and its ratio to the first recipe's.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from benchmarks._report import table  # noqa: E402
from benchmarks.bench_accuracy import named_arch, read_twins, recipe_steps, twin_arch  # noqa: E402
from supernet import Supernet  # noqa: E402
from supernet._io import save_torch, write_text  # noqa: E402
from supernet.config import ExperimentConfig  # noqa: E402
from supernet.counting import count_macs  # noqa: E402
from supernet.data import load_splits, make_loader  # noqa: E402
from supernet.evaluate import evaluate, recalibrate_bn, resize_to  # noqa: E402
from supernet.run import RunInfo, load_run, write_run_info  # noqa: E402
from supernet.train import build_space  # noqa: E402


@torch.no_grad()
def _top1_nll(net: nn.Module, loader, r: int, batch_stats: bool) -> tuple[float, float]:
    net.eval()
    if batch_stats:
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.train()
    correct = nll = n = 0.0
    for x, y in loader:
        logits = net(resize_to(x, r).contiguous(memory_format=torch.channels_last)).float()
        correct += float((logits.argmax(1) == y).sum())
        nll += float(F.cross_entropy(logits, y, reduction="sum"))
        n += len(y)
    return correct / n, nll / n


def teacher_bn(args: argparse.Namespace) -> None:
    run = load_run(args.run, "cpu")
    ckpt = torch.load(Path(args.run) / "checkpoint.pt", map_location="cpu", weights_only=True)
    if ckpt.get("teacher") is None:
        sys.exit(f"{args.run}/checkpoint.pt holds no frozen teacher (a recipe without teacher distillation)")
    teacher = Supernet(run.space)
    teacher.load_state_dict(ckpt["teacher"])
    splits = run.splits()
    test = make_loader(splits.test.subset(torch.arange(min(args.images, len(splits.test)))), 64, shuffle=True,
                       seed=5)
    calib = make_loader(splits.train, 200, shuffle=True, seed=run.config.seed + 1)
    top = max(run.space.resolutions)
    rows = []
    for r in sorted(run.space.resolutions, reverse=True):
        row: dict = {"r": r}
        for name, stats_at, batch in ((f"{top} px stats", top, False), ("batch stats", None, True),
                                      ("stats at r", r, False)):
            net = copy.deepcopy(teacher)
            if stats_at is not None:
                recalibrate_bn(net, run.space.largest(stats_at), calib, run.config.train.bn_calib_images)
            net.set_active(run.space.largest(r))
            row[f"top-1, {name}"], row[f"NLL, {name}"] = _top1_nll(net, test, r, batch)
        rows.append(row)
        print(row, file=sys.stderr, flush=True)
    print(f"Run `{args.run}`: its frozen teacher (the largest subnet), {args.images} test images, batches of 64.\n")
    print(table(rows))


def branch(args: argparse.Namespace) -> None:
    variant = ExperimentConfig.from_yaml(args.recipe)
    ckpt = torch.load(args.teacher_checkpoint, map_location="cpu", weights_only=True)
    if ckpt["progress"] != {"phase": 1, "epoch": 0, "step": 0, "global_step": ckpt["progress"]["global_step"]}:
        sys.exit(f"{args.teacher_checkpoint} is not a teacher-phase-end checkpoint (progress {ckpt['progress']})")
    source = ExperimentConfig.from_yaml(args.source_recipe)
    same = (variant.phases[0] == source.phases[0] and variant.train == source.train and variant.data == source.data
            and variant.space == source.space and variant.seed == source.seed)
    if not same:
        sys.exit(f"{args.recipe}: its teacher phase, train, data, space and seed must equal {args.source_recipe}'s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=False)
    ckpt["config_hash"] = variant.config_hash()
    save_torch(out / "checkpoint.pt", ckpt)
    splits = load_splits(variant.data)
    space = build_space(variant, splits)
    write_text(out / "experiment.yaml", variant.to_yaml())
    write_run_info(out, RunInfo(variant.name, space.to_dict(), variant.data.to_dict(),
                                config_hash=variant.config_hash(), preprocessing=splits.preprocessing))
    print(out)


def ablation_table(args: argparse.Namespace) -> None:
    twins = list(read_twins(args.twins).values())
    rows = []
    for spec in args.runs:
        name, run_dir = spec.split("=", 1)
        run = load_run(run_dir, "cpu")
        splits = run.splits()
        calib = make_loader(splits.train, 200, shuffle=True, seed=run.config.seed + 1)
        test = make_loader(splits.test, 500, shuffle=False)
        archs = {"smallest": run.space.smallest()}
        archs.update({f"random {i}": a for i, a in enumerate(run.space.sample_many(args.random, 0))})
        archs.update(named_arch(spec, run) for spec in args.arch)
        for images in args.bn_images:
            gaps = {"smallest": [], "random": []}
            row: dict = {"run": name, "steps": recipe_steps(run), "train s": run.info.extra.get("train_seconds")}
            if len(args.bn_images) > 1:
                row["BN images"] = images
            for sub, arch in archs.items():
                recalibrate_bn(run.net, arch, calib, images)
                top1 = evaluate(run.net, arch, test)
                twin = next((t["top1"] for t in twins if twin_arch(t) == arch.to_dict()), None)
                row[sub] = f"{100 * top1:.2f}" + (f" ({100 * (top1 - twin):+.1f})" if twin is not None else "")
                if twin is not None:
                    gaps["smallest" if sub == "smallest" else "random"].append(100 * (top1 - twin))
                print(name, images, sub, f"{float(count_macs(run.space, [arch])[0]) / 1e6:.2f} MMACs", top1, twin,
                      file=sys.stderr, flush=True)
            recalibrate_bn(run.net, run.space.largest(), calib, images)
            row["largest"] = f"{100 * evaluate(run.net, run.space.largest(), test):.2f}"
            for kind, values in gaps.items():
                row[f"mean gap {kind} (pp)"] = f"{sum(values) / len(values):+.2f}" if values else ""
            rows.append(row)
    print(table(rows))


def step_cost(args: argparse.Namespace) -> None:
    import time

    import numpy as np

    from benchmarks.bench_sampling import replay
    from supernet import SearchSpace
    from supernet.train import FrozenTeacher, distillation_loss, make_optimizer, step_inputs

    recipes = [ExperimentConfig.from_yaml(r) for r in args.recipes]
    space = SearchSpace.preset(recipes[0].space)
    torch.manual_seed(0)
    net = Supernet(space).to(memory_format=torch.channels_last)
    images = torch.randn(recipes[0].train.batch_size // 2, 1, 28, 28)  # a rank's share on two processes
    labels = torch.randint(0, 10, (len(images),))
    calib = [(images, labels)]
    teacher = FrozenTeacher.copy_of(net, calib, len(images))
    plans = []
    for cfg in recipes:
        passes = replay(cfg, space, args.train_images)
        by_phase: dict = {}
        for phase, step, arch in passes:
            by_phase.setdefault(phase, {}).setdefault(step, []).append(arch)
        plans.append((cfg, by_phase))
    cost: dict = {}
    for _ in range(args.rounds):
        for k, (cfg, by_phase) in enumerate(plans):
            for phase in cfg.phases:
                steps = sorted(by_phase[phase.name])
                pick = [steps[i] for i in np.linspace(0, len(steps) - 1, min(args.steps, len(steps))).astype(int)]
                opt = make_optimizer(net, cfg, phase)
                kd = (cfg.train.kd_weight if phase.kd_weight is None else phase.kd_weight) > 0
                inplace = kd and phase.kd_source == "inplace"
                for step in pick:
                    archs = by_phase[phase.name][step]
                    start = time.process_time()
                    inputs = step_inputs(images, archs)
                    soft = teacher(inputs[max(inputs)]).float() if kd and not inplace else None
                    net.train()
                    opt.zero_grad(set_to_none=True)
                    for i, arch in enumerate(archs):
                        net.set_active(arch)
                        logits = net(inputs[arch.r])
                        loss = F.cross_entropy(logits, labels)
                        if soft is not None:
                            loss = loss + distillation_loss(logits, soft)
                        (loss / len(archs)).backward()
                        if inplace and i == 0:
                            soft = logits.detach()
                    opt.step()
                    cost.setdefault((k, phase.name), []).append(time.process_time() - start)
    rows, base = [], None
    for k, (path, (cfg, by_phase)) in enumerate(zip(args.recipes, plans)):
        total = sum(len(by_phase[p.name]) * float(np.median(cost[(k, p.name)])) for p in cfg.phases)
        base = base or total
        rows.append({"recipe": Path(path).name, "steps": sum(len(v) for v in by_phase.values()),
                     "subnet passes": sum(len(a) for v in by_phase.values() for a in v.values()),
                     "est. CPU s (1 rank)": round(total, 1), "vs first": round(total / base, 3),
                     **{f"s/step {p.name}": round(float(np.median(cost[(k, p.name)])), 3)
                        for p in cfg.phases}})
        print(rows[-1], file=sys.stderr, flush=True)
    print(table(rows, list(dict.fromkeys(c for r in rows for c in r))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("teacher-bn")
    p.add_argument("--run", required=True)
    p.add_argument("--images", type=int, default=5000)
    p = sub.add_parser("branch")
    p.add_argument("--teacher-checkpoint", required=True)
    p.add_argument("--recipe", required=True)
    p.add_argument("--source-recipe", default="experiments/fashion-mnist.yaml")
    p.add_argument("--out", required=True)
    p = sub.add_parser("table")
    p.add_argument("--runs", nargs="+", required=True, help="NAME=RUN_DIR")
    p.add_argument("--twins", type=Path, required=True)
    p.add_argument("--random", type=int, default=3)
    p.add_argument("--arch", action="append", default=[], metavar="NAME=ARCH",
                   help="also this arch (an arch JSON or a bundle folder), counted with the random subnets")
    p.add_argument("--bn-images", type=int, nargs="+", default=[2000],
                   help="training images each subnet's BN is recalibrated on (several: a row per count)")
    p = sub.add_parser("step-cost")
    p.add_argument("recipes", nargs="+")
    p.add_argument("--steps", type=int, default=24)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--train-images", type=int, default=55000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    {"teacher-bn": teacher_bn, "branch": branch, "table": ablation_table, "step-cost": step_cost}[args.command](args)


if __name__ == "__main__":
    main()
