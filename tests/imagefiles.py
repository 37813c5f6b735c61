"""Tiny generated image folders for tests and benchmarks: JPEGs whose colour says their class."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_image_folder(root: str | Path, splits: dict[str, int], classes: int = 3, size: int = 40,
                       seed: int = 0) -> Path:
    """`root/<split>/<class>/<i>.jpg`, `splits[split]` images per class, `size` px, learnable by colour."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    for split, n in splits.items():
        for c in range(classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            base = np.zeros(3)
            base[c % 3] = 180
            for i in range(n):
                pixels = np.clip(base + rng.normal(0, 40, (size, size + 8, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.jpg", quality=85)
    return root
