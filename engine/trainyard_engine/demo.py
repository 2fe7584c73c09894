"""A small synthetic dataset, so the main job needs no download: squares and
discs on noise, in Ultralytics' detection or classification layout."""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ["square", "disc"]


def _canvas(rng, size):
    noise = rng.integers(0, 90, size=(size, size, 3), dtype=np.uint8)
    return Image.fromarray(noise, "RGB")


def _shape(draw, rng, cls, box):
    color = tuple(int(c) for c in rng.integers(150, 256, size=3))
    if cls == 0:
        draw.rectangle(box, fill=color)
    else:
        draw.ellipse(box, fill=color)


def detection(root, train=32, val=8, size=64, seed=0):
    rng = np.random.default_rng(seed)
    root = Path(root)
    for split, count in (("train", train), ("val", val)):
        images = root / "images" / split
        labels = root / "labels" / split
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            img = _canvas(rng, size)
            draw = ImageDraw.Draw(img)
            rows = []
            for _ in range(int(rng.integers(1, 4))):
                cls = int(rng.integers(0, len(CLASSES)))
                w, h = (int(v) for v in rng.integers(size // 6, size // 2, size=2))
                x0 = int(rng.integers(0, size - w))
                y0 = int(rng.integers(0, size - h))
                _shape(draw, rng, cls, (x0, y0, x0 + w - 1, y0 + h - 1))
                rows.append(f"{cls} {(x0 + w / 2) / size:.6f} {(y0 + h / 2) / size:.6f} {w / size:.6f} {h / size:.6f}")
            img.save(images / f"{split}_{i:04d}.png")
            (labels / f"{split}_{i:04d}.txt").write_text("\n".join(rows) + "\n")
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(CLASSES))
    data = root / "data.yaml"
    data.write_text(f"path: {root.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}\n")
    return data


def classification(root, train=16, val=4, size=32, seed=0):
    rng = np.random.default_rng(seed)
    root = Path(root)
    for split, count in (("train", train), ("val", val)):
        for cls, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                img = _canvas(rng, size)
                draw = ImageDraw.Draw(img)
                w, h = (int(v) for v in rng.integers(size // 3, size - 4, size=2))
                x0 = int(rng.integers(0, size - w))
                y0 = int(rng.integers(0, size - h))
                _shape(draw, rng, cls, (x0, y0, x0 + w - 1, y0 + h - 1))
                img.save(folder / f"{i:04d}.png")
    return root


def make(root, kind="detect", **sizes):
    if kind == "detect":
        return detection(root, **sizes)
    if kind == "classify":
        return classification(root, **sizes)
    raise ValueError(f"--kind: unknown dataset kind {kind!r}; use detect or classify")
