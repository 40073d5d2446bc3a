#!/usr/bin/env python3
"""fastai/PyTorch reference for the end-to-end training rows of benches/speed.rs.

One epoch of an hmreg recipe (a configs/*.toml with an HRNet model) as a fastai user runs it:
DataBlock(ImageBlock, PointBlock) over the same split folders, Resize(item_size) as the item
transform (in DataLoader worker processes), aug_transforms(size=input_size) and ImageNet
normalisation as batch transforms, Gaussian target heatmaps (the recipe's sigma, sub-pixel
centres, on input/4 maps) made from the transformed points in the loss, the same thin HRNet-18
(benches/reference_pytorch.py, the recipe's width; parameter counts equal hmreg's), MSE,
fastai's Adam and fit_one_cycle(1) at the recipe's rate, then the validation pass with an
argmax-decoded point error as the metric. Prints images/s: training images of the epoch over the
wall time of fit_one_cycle(1) (training and validation), as hmreg's row counts them.

Installs nothing. Needs: pip install fastai   (pulls torch and torchvision)
Usage: python3 benches/train_reference.py CONFIG.toml [--root DIR] [--threads 2] [--json]
--root overrides the config's data.root (the bench passes the synthetic set it generated).
"""

import argparse
import json
import os
import sys
import time
import tomllib
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def gaussian_targets(points, size, sigma):
    """(N, L, 2) points in [-1, 1] (fastai's) -> (N, L, size, size) Gaussians at sub-pixel
    centres, pixel i standing for coordinate i of a size-pixel map."""
    import torch

    c = (points + 1) / 2 * size
    xs = torch.arange(size, dtype=torch.float32, device=points.device)
    gx = torch.exp(-((xs.view(1, 1, size) - c[..., 0:1]) ** 2) / (2 * sigma**2))
    gy = torch.exp(-((xs.view(1, 1, size) - c[..., 1:2]) ** 2) / (2 * sigma**2))
    return gy.unsqueeze(-1) * gx.unsqueeze(-2)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("config")
    p.add_argument("--root", help="data root (default: the config's data.root)")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    import torch
    from fastai.vision.all import (
        DataBlock,
        ImageBlock,
        Learner,
        Normalize,
        PointBlock,
        Resize,
        aug_transforms,
        imagenet_stats,
    )
    from pipeline_reference import read_points
    from reference_pytorch import build_hrnet18

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = tomllib.loads(Path(args.config).read_text())
    data = cfg.get("data", {})
    root = Path(args.root or data.get("root"))
    if not root.is_absolute() and not args.root:
        root = Path(args.config).resolve().parent.parent / root
    model_cfg = cfg.get("model", {})
    if model_cfg.get("arch", "hrnet18").lower() != "hrnet18":
        sys.exit("train_reference.py: only HRNet-18 recipes are ported")
    pipe = cfg.get("pipeline", {})
    size = int(pipe.get("input_size", 256))
    item_size = int(pipe.get("item_size", 0)) or size
    flip = float(pipe.get("flip", {}).get("p", 0.0)) > 0
    enc = cfg.get("target", {}).get("encoder", {})
    sigma = float(enc.get("sigma", 2.0))
    batch = int(cfg.get("batch_size", 24))
    lr = float(cfg.get("schedule", {}).get("lr", 1e-3))
    points = data.get("points", "all")
    selection = None if points == "all" else [int(i) for i in points]

    def items(split):
        return sorted((root / split / "images").glob("*.jpg")) + sorted(
            (root / split / "images").glob("*.png")
        )

    train_items = items(data.get("train_split", "train"))
    valid_items = items(data.get("val_split", "val"))
    all_items = train_items + valid_items
    n_train = len(train_items)

    def label(path):
        lm = path.parent.parent / "landmarks" / (path.stem + ".txt")
        return read_points(lm, selection)

    dblock = DataBlock(
        blocks=(ImageBlock, PointBlock),
        get_items=lambda _: all_items,
        get_y=label,
        splitter=lambda _: (list(range(n_train)), list(range(n_train, len(all_items)))),
        item_tfms=Resize(item_size),
        batch_tfms=[
            *aug_transforms(size=size, do_flip=flip),
            Normalize.from_stats(*imagenet_stats),
        ],
    )
    dls = dblock.dataloaders(root, bs=batch)
    n_points = dls.one_batch()[1].shape[1]
    model = build_hrnet18(n_points, float(model_cfg.get("width", 1.0)))
    map_size = size // 4

    def heatmap_mse(pred, pts):
        target = gaussian_targets(pts.float(), map_size, sigma)
        return torch.nn.functional.mse_loss(pred.float(), target)

    def point_error(pred, pts):
        # argmax decoding, mean distance in map pixels
        n, l, h, w = pred.shape
        idx = pred.flatten(2).argmax(-1)
        xy = torch.stack([idx % w, idx // w], -1).float()
        truth = (pts.float() + 1) / 2 * map_size
        return (xy - truth).norm(dim=-1).mean()

    learn = Learner(dls, model, loss_func=heatmap_mse, metrics=[point_error])
    t = time.perf_counter()
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1, lr)
    seconds = time.perf_counter() - t
    images = (n_train // batch) * batch
    row = {
        "impl": "fastai",
        "config": args.config,
        "params": sum(q.numel() for q in model.parameters()),
        "train_images": images,
        "seconds": seconds,
        "images_per_second": images / seconds,
        "threads": args.threads,
        "workers": dls.train.num_workers,
    }
    if args.json:
        print(json.dumps(row), flush=True)
    else:
        print(
            f"{args.config}: {images} training images, epoch with validation {seconds:.1f} s, "
            f"{row['images_per_second']:.1f} images/s ({row['params']:,} parameters)"
        )


if __name__ == "__main__":
    main()
