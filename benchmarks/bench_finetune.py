"""Fine-tuning a searched subnet before export (`nas export --finetune`): its speed through the supernet against
the extracted static net (the same steps, side by side), and, given a trained run, what it buys each subnet.

    python benchmarks/bench_finetune.py [--batch 128] [--steps 4] [--rounds 3] [--threads 1]
                                        [--run RUN --budgets 5%,10% --random 3 --bn-images 2000]
                                        [--arch NAME=ARCH ...] [--variant NAME:FIELD=VALUE,... ...]
                                        [--twins TWINS.jsonl]

Speed: `nas.export.finetune.finetune_subnet` on the supernet with the arch fixed, and on `net.extract(arch)`, each
with the same frozen teacher (the largest subnet), interleaved rounds, median seconds per step. Quality (--run):
for the smallest and `--random` random subnets of the run's space, test top-1 in the supernet (BN recalibrated)
and after fine-tuning a fresh copy of the supernet for each budget (a share of the run's training steps), as
`nas export` does (the run's optimiser and last-phase LR, KD from the largest, BN recalibrated after). `--arch`:
these archs instead (e.g. a demo's bundles); `--variant`: also other fine-tuning recipes, side by side; `--twins`:
each arch's top-1 trained alone (`bench_accuracy.py --twins`), and the fine-tuned net's gap to it.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

from benchmarks._report import table, write_section  # noqa: E402
from nas.export.finetune import FinetuneRecipe, finetune_steps, finetune_subnet  # noqa: E402
from supernet import ArchConfig, SearchSpace, Supernet  # noqa: E402
from supernet.counting import count_macs  # noqa: E402
from supernet.data import make_loader  # noqa: E402
from supernet.evaluate import evaluate, recalibrate_bn, resize_to  # noqa: E402
from supernet.train import FrozenTeacher  # noqa: E402


def _archs(space: SearchSpace, n_random: int, r: int | None = None) -> list[tuple[str, ArchConfig]]:
    out = [("smallest", space.smallest())]
    for seed in range(n_random):
        a = space.sample(seed)
        out.append((f"random {seed}", a if r is None else ArchConfig(a.ks, a.e, a.d, r)))
    return out


def _macs(space: SearchSpace, arch: ArchConfig) -> float:
    return float(count_macs(space, space.encode([arch]))[0]) / 1e6


def speed(args: argparse.Namespace) -> tuple[list[dict], str]:
    space = SearchSpace.preset(args.space)
    torch.manual_seed(0)
    net = Supernet(space).to(memory_format=torch.channels_last)
    n = args.batch * (args.steps + 1)
    data = TensorDataset(torch.randn(n, space.in_channels, 28, 28), torch.randint(0, space.num_classes, (n,)))
    bn = make_loader(data, args.batch, shuffle=False)
    recipe = FinetuneRecipe(optimizer="adamw", lr=2e-3, batch_size=args.batch)
    rows = []
    archs = [("largest", space.largest())] + _archs(space, args.random_speed, r=28)
    for name, arch in archs:
        teacher = FrozenTeacher.copy_of(net, bn, args.batch)
        teacher(resize_to(data.tensors[0][:1], arch.r))  # BN statistics at r gathered here, not in a timed step
        paths = {"supernet": copy.deepcopy(net), "static": net.extract(arch).to(memory_format=torch.channels_last),
                 "static NCHW": net.extract(arch)}
        times: dict[str, list[float]] = {k: [] for k in paths}
        for _ in range(args.rounds):
            for label, student in paths.items():
                t0 = time.perf_counter()
                finetune_subnet(student, arch, data, steps=args.steps, recipe=recipe, teacher=teacher)
                times[label].append((time.perf_counter() - t0) / args.steps)
        sup, sta, nchw = (statistics.median(times[k]) for k in ("supernet", "static", "static NCHW"))
        rows.append({"arch": name, "r": arch.r, "MMACs": round(_macs(space, arch), 2),
                     "supernet s/step": round(sup, 3), "static channels_last s/step": round(sta, 3),
                     "static NCHW s/step": round(nchw, 3), "static cl / supernet": round(sta / sup, 2),
                     "static NCHW / supernet": round(nchw / sup, 2)})
        print(rows[-1], flush=True)
    text = (f"Fine-tuning steps (teacher forward, student forward/backward, AdamW step) at batch {args.batch}, "
            f"{args.steps} steps x {args.rounds} interleaved rounds, median; {torch.get_num_threads()} torch "
            f"thread(s); space `{args.space}`, untrained weights (speed does not depend on them), random 28 px "
            f"images. The input batch is channels_last on every path (as `nas train` feeds the supernet); "
            f"\"static NCHW\" keeps the extracted net's weights in the default layout.")
    return rows, text


def recipe_variant(spec: str, base: FinetuneRecipe) -> tuple[str, FinetuneRecipe]:
    """`NAME:field=value,...` as (NAME, `base` with those FinetuneRecipe fields changed), e.g. 'kd0:kd_weight=0'."""
    name, _, assignments = spec.partition(":")
    changes: dict = {}
    for item in filter(None, (a.strip() for a in assignments.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key not in base.__dataclass_fields__:
            raise ValueError(f"--variant {spec!r}: {item!r} is not FIELD=VALUE with FIELD among "
                             f"{', '.join(base.__dataclass_fields__)}")
        kind = type(getattr(base, key))
        changes[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    if not name.strip() or not changes:
        raise ValueError(f"--variant takes NAME:FIELD=VALUE[,FIELD=VALUE...], got {spec!r}")
    return name.strip(), dataclasses.replace(base, **changes)


def quality(args: argparse.Namespace) -> tuple[list[dict], str]:
    from benchmarks.bench_accuracy import named_arch, read_twins, twin_arch
    from supernet.run import load_run

    run = load_run(args.run)
    splits = run.splits()
    total = run.info.extra.get("steps")
    recipe = FinetuneRecipe.from_config(run.config)
    variants = [("recipe", recipe)] + [recipe_variant(v, recipe) for v in args.variant]
    archs = [named_arch(spec, run) for spec in args.arch] or _archs(run.space, args.random)
    twins = {json.dumps(twin_arch(t), sort_keys=True): t["top1"] for t in read_twins(args.twins).values()}
    bn = make_loader(splits.train, 200, shuffle=True, seed=run.data.seed)  # as `nas export` recalibrates
    test = make_loader(splits.test, 500, shuffle=False)
    budgets = [b.strip() for b in args.budgets.split(",") if b.strip()]
    rows = []
    for name, arch in archs:
        base = copy.deepcopy(run.net)
        recalibrate_bn(base, arch, bn, args.bn_images)
        before = evaluate(base, arch, test)
        twin = twins.get(json.dumps(arch.to_dict(), sort_keys=True))
        for budget in budgets:
            steps = finetune_steps(budget, total)
            for label, variant in variants:
                net = copy.deepcopy(run.net)
                teacher = FrozenTeacher.copy_of(net, bn, args.bn_images)
                done = finetune_subnet(net, arch, splits.train, steps=steps, recipe=variant, teacher=teacher,
                                       seed=run.data.seed, pad=splits.pad, flip=splits.flip)
                recalibrate_bn(net, arch, bn, args.bn_images)
                after = evaluate(net, arch, test)
                row = {"subnet": name, "MMACs": round(_macs(run.space, arch), 2), "r": arch.r,
                       "budget": f"{budget} ({steps} steps)", "fine-tuning": label,
                       "in supernet": round(before, 4), "fine-tuned": round(after, 4),
                       "twin": round(twin, 4) if twin is not None else "",
                       "fine-tuned - twin (pp)": round(100 * (after - twin), 2) if twin is not None else "",
                       "s": round(done["seconds"], 1)}
                rows.append(row)
                print(row, flush=True)
    changed = "; ".join(f"{label}: " + ", ".join(f"{k} {getattr(v, k)!r}" for k in v.__dataclass_fields__
                                                if getattr(v, k) != getattr(recipe, k))
                        for label, v in variants[1:])
    text = (f"Run `{args.run}` ({total} training steps, checkpoint {run.checkpoint_hash[:12]}); test top-1 (10,000 "
            f"images), BN recalibrated on {args.bn_images} training images before and after, as `nas export` does. "
            f"Fine-tuning `recipe` (what `nas export --finetune` does): {recipe.optimizer} at lr {recipe.lr:g} (the "
            f"run's last phase), cosine after {recipe.warmup_steps} warm-up steps, batch {recipe.batch_size}, "
            f"KD weight {recipe.kd_weight:g} from the frozen largest subnet at the student's resolution"
            + (f". Variants: {changed}." if changed else ".")
            + (" Twin: the arch trained alone for the run's steps (`bench_accuracy.py`'s train_from_scratch, "
               f"from `{args.twins}`)." if args.twins else ""))
    return rows, text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="tiny-mbv3")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=4, help="timed fine-tuning steps per measurement")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--random-speed", type=int, default=2, help="random subnets (at 28 px) in the speed table")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--run", default=None, help="a trained run: also measure the accuracy fine-tuning buys")
    ap.add_argument("--budgets", default="5%,10%")
    ap.add_argument("--random", type=int, default=3, help="random subnets in the quality table")
    ap.add_argument("--arch", action="append", default=[], metavar="NAME=ARCH",
                    help="fine-tune this arch (an arch JSON or a bundle folder) instead of the smallest and random")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:FIELD=VALUE,...",
                    help="also fine-tune with these FinetuneRecipe fields changed, e.g. 'kd0:kd_weight=0'")
    ap.add_argument("--twins", type=Path, default=None,
                    help="bench_accuracy.py's twins file: each arch's top-1 trained alone, beside the fine-tuned")
    ap.add_argument("--bn-images", type=int, default=2000)
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    parts = []
    if not args.no_speed:
        rows, text = speed(args)
        parts += ["### Speed: through the supernet vs the extracted net", "", text, "", table(rows), ""]
    if args.run:
        rows, text = quality(args)
        parts += ["### What fine-tuning buys", "", text, "", table(rows), ""]
    body = "\n".join(parts) + "\nThe machine was shared with other jobs while this ran: read times as ratios.\n"
    print(body)
    if not args.no_write:
        write_section("export-finetune", "Export: fine-tuning a searched subnet (through the supernet)", body)


if __name__ == "__main__":
    main()
