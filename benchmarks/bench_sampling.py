"""Sampler coverage of a training recipe: which subnets the supernet's steps actually train, replayed from the
recipe's seeds without training (the same draws `nas train` makes, step by step).

    python benchmarks/bench_sampling.py [experiments/fashion-mnist.yaml] [--space-samples 20000]

The space's subnets are cut into five MACs quintiles (from uniform samples of the space at each resolution); the
table gives, per quintile, the share of the recipe's subnet passes (forward + backward of one subnet on one batch)
that fell in it, in the teacher phase and in the elastic phases, and how many passes that was.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks._report import table, write_section  # noqa: E402
from supernet import SearchSpace  # noqa: E402
from supernet.config import ExperimentConfig  # noqa: E402
from supernet.counting import count_macs  # noqa: E402
from supernet.train import step_subnets  # noqa: E402


def replay(config: ExperimentConfig, space: SearchSpace, n_train: int) -> list[tuple[str, int, object]]:
    """(phase, step, arch) for every subnet pass of the recipe, drawn as supernet.train draws them."""
    out = []
    step = 0
    for phase in config.phases:
        per_epoch = n_train // config.train.batch_size
        per_epoch = per_epoch if phase.steps_per_epoch is None else min(per_epoch, phase.steps_per_epoch)
        for _ in range(phase.epochs * per_epoch):
            rng = np.random.default_rng([config.seed, step])
            rng.integers(2**62), rng.integers(2**62)  # the augmentation and dropout seeds
            out += [(phase.name, step, a) for a in step_subnets(space, phase, rng)]
            step += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe", nargs="?", default="experiments/fashion-mnist.yaml")
    ap.add_argument("--train-images", type=int, default=55000, help="training split size (Fashion-MNIST: 55,000)")
    ap.add_argument("--space-samples", type=int, default=20000)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    config = ExperimentConfig.from_yaml(args.recipe)
    space = SearchSpace.preset(config.space)
    uniform = [space.sample(seed) for seed in range(args.space_samples)]
    edges = np.quantile(count_macs(space, space.encode(uniform)), [0.2, 0.4, 0.6, 0.8])
    passes = replay(config, space, args.train_images)
    macs = count_macs(space, space.encode([a for _, _, a in passes]))
    bucket = np.searchsorted(edges, macs, side="right")
    teacher = np.array([p == config.phases[0].name for p, _, _ in passes])
    smallest, largest = space.smallest(), space.largest()
    rows = []
    lo = [float(macs.min())] + list(edges)
    hi = list(edges) + [float(macs.max())]
    for q in range(5):
        sel = bucket == q
        rows.append({"MACs quintile of the space": f"Q{q + 1}: {lo[q] / 1e6:.2f}-{hi[q] / 1e6:.2f} M",
                     "passes, elastic phases": int((sel & ~teacher).sum()),
                     "share, elastic phases": round(float((sel & ~teacher).sum() / max(1, (~teacher).sum())), 3),
                     "share, whole run": round(float(sel.sum() / len(passes)), 3)})
    kinds = Counter()
    for (phase, _, a), is_t in zip(passes, teacher):
        if is_t:
            continue
        kinds["smallest (any r)" if (a.ks, a.e, a.d) == (smallest.ks, smallest.e, smallest.d) else
              "largest (any r)" if (a.ks, a.e, a.d) == (largest.ks, largest.e, largest.d) else
              "phase extreme (sandwich) or random"] += 1
    per_phase = Counter(p for p, _, _ in passes)
    body = [f"Recipe `{args.recipe}` ({len(set(s for _, s, _ in passes))} steps, {len(passes)} subnet passes), space "
            f"`{space.name}`; quintiles from {args.space_samples:,} uniform samples of the space. No training: "
            f"the recipe's draws replayed from its seeds.", "", table(rows), "",
            "Subnet passes per phase: " + ", ".join(f"{k} {v}" for k, v in per_phase.items()) + ".", "",
            "Elastic-phase passes of the space's smallest and largest (their own kernel, expand and depth) against "
            "all others: " + ", ".join(f"{k} {v}" for k, v in kinds.items()) + "."]
    text = "\n".join(body)
    print(text)
    if not args.no_write:
        write_section("sampler-coverage", "Sampler coverage of the demo recipe (which subnets the steps train)", text)


if __name__ == "__main__":
    main()
