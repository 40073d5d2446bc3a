#!/usr/bin/env python3
"""PyTorch reference for the speed bench's prediction row: landmarks for every image of a folder
of face crops with the built-in model's architecture (HRNet-18 at width 1/4, 68 points, 128x128
input), as a PyTorch user's evaluation loop does it: a DataLoader (PIL decode, bilinear resize
to the input, ImageNet normalisation; one worker process per thread), the model in eval mode
under no_grad in batches, argmax decoding mapped back to image pixels. Random weights: the
speed does not depend on them. Prints images/s over the whole loop.

Installs nothing. Needs: pip install torch torchvision
Usage: python3 benches/predict_reference.py DIR [--threads 2] [--batch 32] [--json]
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("dir")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--points", type=int, default=68)
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    import torch
    from PIL import Image
    from reference_pytorch import build_hrnet18

    torch.set_num_threads(args.threads)
    files = sorted(
        f for f in Path(args.dir).iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png")
    )
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    size = args.size

    class Crops(torch.utils.data.Dataset):
        def __len__(self):
            return len(files)

        def __getitem__(self, i):
            img = Image.open(files[i]).convert("RGB")
            w, h = img.size
            img = img.resize((size, size), Image.BILINEAR)
            x = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
            x = x.view(size, size, 3).permute(2, 0, 1).float() / 255
            return (x - mean) / std, torch.tensor([w, h], dtype=torch.float32)

    loader = torch.utils.data.DataLoader(
        Crops(), batch_size=args.batch, num_workers=args.threads, shuffle=False
    )
    model = build_hrnet18(args.points, args.width).eval()
    t = time.perf_counter()
    n = 0
    with torch.no_grad():
        for x, wh in loader:
            maps = model(x)
            b, l, mh, mw = maps.shape
            idx = maps.flatten(2).argmax(-1)
            xy = torch.stack([idx % mw, idx // mw], -1).float()
            points = xy * (wh.view(b, 1, 2) / torch.tensor([mw, mh]))
            n += points.shape[0]
    seconds = time.perf_counter() - t
    row = {
        "impl": "pytorch",
        "images": n,
        "seconds": seconds,
        "images_per_second": n / seconds,
        "threads": args.threads,
        "torch": torch.__version__,
    }
    if args.json:
        print(json.dumps(row), flush=True)
    else:
        print(f"{n} images in {seconds:.1f} s: {n / seconds:.1f} images/s")


if __name__ == "__main__":
    main()
