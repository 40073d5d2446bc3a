#!/usr/bin/env python3
"""fastai/PyTorch reference for benches/pipeline.rs: the recipe's DataBlock on the same images.

Images per second for: decode (PIL) + Resize(400) (item transforms, in DataLoader workers) +
aug_transforms(size=256, do_flip=False) + ImageNet normalisation (batch transforms, CPU) + target
heatmaps made from the transformed points with vectorised torch code (Gaussian sigma 10 on
256x256 maps, randomized rounding on 64x64 maps), with 1 and 2 threads.

Installs nothing. Needs: pip install fastai   (pulls torch and torchvision)
Usage: python benches/pipeline_reference.py [DIR] [--points 8,30,36,45,57] [--batch 32] [--epochs 2]
DIR is a split folder (images/ + landmarks/), default ../shared/data/300w-helen/train.
"""

import argparse
import os
import time
from pathlib import Path

import torch
from fastai.vision.all import (
    DataBlock,
    ImageBlock,
    IndexSplitter,
    Normalize,
    PointBlock,
    Resize,
    aug_transforms,
    get_image_files,
    imagenet_stats,
)


def read_points(path, selection):
    lines = Path(path).read_text().split("\n")
    n = int(lines[0])
    pts = [[float(v) for v in line.split()[:2]] for line in lines[1 : 1 + n]]
    if selection is not None:
        pts = [pts[i] for i in selection]
    return torch.tensor(pts)


def gaussian_targets(points, size=256, sigma=10.0):
    # points: (N, L, 2) in [-1, 1]; integer centre int((p+1)/2*size), window radius 3 sigma.
    c = ((points + 1) / 2 * size).long().float()
    xs = torch.arange(size, dtype=torch.float32)
    dx = xs.view(1, 1, size) - c[..., 0:1]
    dy = xs.view(1, 1, size) - c[..., 1:2]
    r = 3 * sigma
    gx = torch.exp(-(dx**2) / (2 * sigma**2)) * (dx.abs() <= r)
    gy = torch.exp(-(dy**2) / (2 * sigma**2)) * (dy.abs() <= r)
    return gy.unsqueeze(-1) * gx.unsqueeze(-2)  # (N, L, size, size)


def rounding_targets(points, size=64):
    p = (points + 1) / 2 * size
    base = p.floor()
    up = torch.rand_like(p) < (p - base)
    q = (base + up.float()).clamp(0, size - 1).long()
    n, l, _ = points.shape
    maps = torch.zeros(n, l, size * size)
    maps.scatter_(2, (q[..., 1] * size + q[..., 0]).unsqueeze(-1), 1.0)
    return maps.view(n, l, size, size)


def main():
    default_dir = Path(__file__).resolve().parent.parent / ".." / "shared/data/300w-helen/train"
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", nargs="?", default=str(default_dir))
    ap.add_argument("--points", default="8,30,36,45,57", help="'all' or 0-based indices")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()

    split = Path(args.dir).resolve()
    selection = None if args.points == "all" else [int(v) for v in args.points.split(",")]
    lm_dir = split / "landmarks"
    items = get_image_files(split / "images")

    def get_y(img_path):
        return read_points(lm_dir / (Path(img_path).stem + ".txt"), selection)

    dblock = DataBlock(
        blocks=(ImageBlock, PointBlock),
        get_items=get_image_files,
        get_y=get_y,
        splitter=IndexSplitter([0]),  # everything but one image is training data
        item_tfms=Resize(400),
        batch_tfms=[*aug_transforms(size=256, do_flip=False), Normalize.from_stats(*imagenet_stats)],
    )
    print(
        f"fastai {__import__('fastai').__version__}, torch {torch.__version__}: {len(items)} images "
        f"from {split}, batch {args.batch}, {args.epochs} epochs per measurement"
    )
    print(f"{'targets':<34} {'threads':>7} {'images/s':>12}")
    encoders = [
        ("gaussian sigma 10, 256x256 maps", gaussian_targets),
        ("randomized rounding, 64x64 maps", rounding_targets),
    ]
    for name, encode in encoders:
        for threads in [int(t) for t in args.threads.split(",")]:
            torch.set_num_threads(threads)
            # One thread: everything in this process. Two: two loader worker processes for the
            # item transforms, batch transforms on two torch threads here.
            workers = 0 if threads == 1 else threads
            dls = dblock.dataloaders(split / "images", bs=args.batch, num_workers=workers, device=torch.device("cpu"))
            t = time.perf_counter()
            n = 0
            for _ in range(args.epochs):
                for xb, yb in dls.train:
                    maps = encode(yb.view(yb.shape[0], -1, 2))
                    n += xb.shape[0]
                    del maps
            rate = n / (time.perf_counter() - t)
            print(f"{name:<34} {threads:>7} {rate:>12.1f}", flush=True)


if __name__ == "__main__":
    main()
