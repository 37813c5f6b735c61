"""Fine-tuning a searched subnet before export (`nas export --finetune`): its speed through the supernet against
the extracted static net (the same steps, side by side), and, given a trained run, what it buys each subnet.

    python benchmarks/bench_finetune.py [--batch 128] [--steps 4] [--rounds 3] [--threads 1]
                                        [--run RUN --budgets 5%,10% --random 3 --bn-images 2000]

Speed: `nas.export.finetune.finetune_subnet` on the supernet with the arch fixed, and on `net.extract(arch)`, each
with the same frozen teacher (the largest subnet), interleaved rounds, median seconds per step. Quality (--run):
for the smallest and `--random` random subnets of the run's space, test top-1 in the supernet (BN recalibrated)
and after fine-tuning a fresh copy of the supernet for each budget (a share of the run's training steps), as
`nas export` does (the run's optimiser and last-phase LR, KD from the largest, BN recalibrated after).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

from benchmarks._report import table, write_section  # noqa: E402
from nas.export.finetune import FinetuneRecipe, finetune_steps, finetune_subnet, frozen_teacher  # noqa: E402
from supernet import ArchConfig, SearchSpace, Supernet  # noqa: E402
from supernet.counting import count_macs  # noqa: E402
from supernet.data import make_loader  # noqa: E402
from supernet.evaluate import evaluate, recalibrate_bn  # noqa: E402


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
        teacher = frozen_teacher(net, arch, bn, args.batch)
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


def quality(args: argparse.Namespace) -> tuple[list[dict], str]:
    from supernet.run import load_run

    run = load_run(args.run)
    splits = run.splits()
    total = run.info.get("steps")
    recipe = FinetuneRecipe.from_config(run.config)
    bn = make_loader(splits.train, 200, shuffle=True, seed=run.data.seed)
    test = make_loader(splits.test, 500, shuffle=False)
    budgets = [b.strip() for b in args.budgets.split(",") if b.strip()]
    rows = []
    for name, arch in _archs(run.space, args.random):
        base = copy.deepcopy(run.net)
        recalibrate_bn(base, arch, bn, args.bn_images)
        row = {"subnet": name, "MMACs": round(_macs(run.space, arch), 2), "r": arch.r,
               "in supernet": round(evaluate(base, arch, test), 4)}
        for budget in budgets:
            steps = finetune_steps(budget, total)
            net = copy.deepcopy(run.net)
            teacher = frozen_teacher(net, arch, bn, args.bn_images)
            done = finetune_subnet(net, arch, splits.train, steps=steps, recipe=recipe, teacher=teacher,
                                   seed=run.data.seed, pad=splits.pad, flip=splits.flip)
            recalibrate_bn(net, arch, bn, args.bn_images)
            row[f"after {budget} ({steps} steps)"] = round(evaluate(net, arch, test), 4)
            row[f"{budget} s"] = round(done["seconds"], 1)
        rows.append(row)
        print(row, flush=True)
    text = (f"Run `{args.run}` ({total} training steps, checkpoint {run.checkpoint_hash[:12]}); test top-1 (10,000 "
            f"images), BN recalibrated on {args.bn_images} training images before and after. Fine-tuning: "
            f"{recipe.optimizer} at lr {recipe.lr:g} (the run's last phase), cosine, batch {recipe.batch_size}, "
            f"KD weight {recipe.kd_weight:g} from the frozen largest subnet at the student's resolution.")
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
