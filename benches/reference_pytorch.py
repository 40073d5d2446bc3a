#!/usr/bin/env python3
"""PyTorch reference for hmreg's speed benchmark (benches/speed.rs).

Measures, on the CPU with a fixed number of threads (or on a GPU: --device cuda, in f32 or with
autocast to --precision bf16/f16), what the Rust bench measures for hmreg:
  - unet-resnet18: fastai's DynamicUnet on a ResNet18 body, 5 outputs (31,113,308 parameters)
  - hrnet18: HRNet-W18 (270-channel concatenation) + binary head, 5 outputs (9,637,050 parameters),
    ported below from the description in docs/method.md
for each: training step (forward + backward + AdamW step, MSE loss, batch 8, 256x256), inference
forward at batch 1 and 8 (eval mode, no grad), peak resident memory, forward GFLOP (convolutions
and matrix products). Medians over repeated runs after warm-up. Each architecture runs in its own
child process so that its peak memory is its own.

Needs: pip install torch fastai   (nothing is installed at run time)
Usage: python3 benches/reference_pytorch.py --threads 2 [--arch unet-resnet18] [--json]
       [--device cuda] [--precision bf16]
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ARCHS = ["unet-resnet18", "hrnet18"]
EXPECTED_PARAMS = {"unet-resnet18": 31_113_308, "hrnet18": 9_637_050}


# ---------------------------------------------------------------- HRNet-W18 (method.md)


def build_hrnet18(n_points, width=1.0):
    """HRNet-W18 + binary head; `width` scales every channel count as hmreg's `model.width` does
    (round half away from zero, at least 1)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def conv3(cin, cout, stride=1):
        return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)

    def conv_bn(cin, cout, k, stride, relu):
        layers = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        return nn.Sequential(*layers)

    class Basic(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv1, self.bn1 = conv3(c, c), nn.BatchNorm2d(c)
            self.conv2, self.bn2 = conv3(c, c), nn.BatchNorm2d(c)

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x)), inplace=True)
            return F.relu(self.bn2(self.conv2(y)) + x, inplace=True)

    class Bottleneck(nn.Module):
        def __init__(self, cin, planes, downsample):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes)
            self.conv2, self.bn2 = conv3(planes, planes), nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes * 4)
            self.downsample = conv_bn(cin, planes * 4, 1, 1, False) if downsample else None

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x)), inplace=True)
            y = F.relu(self.bn2(self.conv2(y)), inplace=True)
            y = self.bn3(self.conv3(y))
            skip = self.downsample(x) if self.downsample is not None else x
            return F.relu(y + skip, inplace=True)

    class Module(nn.Module):
        """One HR module: 4 BasicBlocks per branch, then fuse by sum (ReLU after each sum)."""

        def __init__(self, widths):
            super().__init__()
            n = len(widths)
            self.branches = nn.ModuleList(
                nn.Sequential(*[Basic(c) for _ in range(4)]) for c in widths
            )
            self.fuse = nn.ModuleList()
            for i in range(n):
                row = nn.ModuleList()
                for j in range(n):
                    if j > i:
                        row.append(conv_bn(widths[j], widths[i], 1, 1, False))
                    elif j == i:
                        row.append(nn.Identity())
                    else:
                        chain = [conv_bn(widths[j], widths[j], 3, 2, True) for _ in range(i - j - 1)]
                        chain.append(conv_bn(widths[j], widths[i], 3, 2, False))
                        row.append(nn.Sequential(*chain))
                self.fuse.append(row)

        def forward(self, xs):
            xs = [b(x) for b, x in zip(self.branches, xs)]
            out = []
            for i, row in enumerate(self.fuse):
                acc = None
                for j, f in enumerate(row):
                    y = f(xs[j])
                    if j > i:
                        y = F.interpolate(y, scale_factor=2 ** (j - i), mode="nearest")
                    acc = y if acc is None else acc + y
                out.append(F.relu(acc))
            return out

    def scaled(c):
        return max(1, int(c * width + 0.5))

    class HRNet18(nn.Module):
        def __init__(self, n_points):
            super().__init__()
            w = [scaled(18) << i for i in range(4)]
            s = scaled(64)
            self.stem = nn.Sequential(conv_bn(3, s, 3, 2, True), conv_bn(s, s, 3, 2, True))
            self.layer1 = nn.Sequential(
                Bottleneck(s, s, True), *[Bottleneck(4 * s, s, False) for _ in range(3)]
            )
            self.t1 = nn.ModuleList(
                [conv_bn(4 * s, w[0], 3, 1, True), conv_bn(4 * s, w[1], 3, 2, True)]
            )
            self.stage2 = nn.Sequential(Module(w[:2]))
            self.t2 = conv_bn(w[1], w[2], 3, 2, True)
            self.stage3 = nn.Sequential(*[Module(w[:3]) for _ in range(4)])
            self.t3 = conv_bn(w[2], w[3], 3, 2, True)
            self.stage4 = nn.Sequential(*[Module(w) for _ in range(3)])
            c = sum(w)
            self.head = nn.Sequential(
                nn.Conv2d(c, c, 1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
                nn.Conv2d(c, n_points, 1, bias=False),
            )

        def forward(self, x):
            x = self.layer1(self.stem(x))
            xs = [t(x) for t in self.t1]
            xs = self.stage2(xs)
            xs = self.stage3(xs + [self.t2(xs[-1])])
            xs = self.stage4(xs + [self.t3(xs[-1])])
            size = xs[0].shape[-2:]
            ups = [xs[0]] + [
                F.interpolate(x, size=size, mode="bilinear", align_corners=False) for x in xs[1:]
            ]
            return self.head(torch.cat(ups, 1))

    return HRNet18(n_points)


def build_unet(n_points, size):
    from fastai.vision.models.unet import DynamicUnet
    from fastai.vision.learner import create_body
    from torchvision.models import resnet18

    # unet_learner's defaults: no blur, no self-attention, no y_range, last_cross=True.
    body = create_body(resnet18(), n_in=3, pretrained=False, cut=-2)
    return DynamicUnet(body, n_out=n_points, img_size=(size, size))


# ---------------------------------------------------------------- measurement


def median_ms(fn, warmup, reps, sync=lambda: None):
    for _ in range(warmup):
        fn()
        sync()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()  # a GPU runs asynchronously: stop the clock when it has finished
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def forward_gflop(model, x):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() / 1e9


def bench_one(arch, args):
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    # Mixed precision as PyTorch users run it: autocast (bf16/f16 compute, f32 weights), and a
    # GradScaler for f16.
    half = {"bf16": torch.bfloat16, "f16": torch.float16}.get(args.precision)
    if half is not None and not cuda:
        sys.exit(f"--precision {args.precision} needs a CUDA device")

    def autocast():
        return torch.autocast("cuda", dtype=half, enabled=half is not None)

    scaler = torch.amp.GradScaler("cuda", enabled=args.precision == "f16")
    model = build_unet(5, args.size) if arch == "unet-resnet18" else build_hrnet18(5)
    params = sum(p.numel() for p in model.parameters())
    if params != EXPECTED_PARAMS[arch]:
        print(f"warning: {arch} has {params} parameters, expected {EXPECTED_PARAMS[arch]}",
              file=sys.stderr)
    x = torch.randn(args.batch, 3, args.size, args.size)
    with torch.no_grad():
        out_shape = model.eval()(x[:1]).shape
    gflop = forward_gflop(model.eval(), x[:1]) * args.batch
    model = model.to(device)
    x = x.to(device)
    target = torch.rand(args.batch, *out_shape[1:], device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.99), eps=1e-5,
                            weight_decay=0.01)
    loss_fn = torch.nn.MSELoss()

    def train_step():
        model.train()
        opt.zero_grad(set_to_none=True)
        with autocast():
            out = model(x)
        loss = loss_fn(out.float(), target)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    def infer(batch):
        def run():
            model.eval()
            with torch.no_grad(), autocast():
                model(x[:batch])
        return run

    train_ms = median_ms(train_step, args.warmup, args.reps, sync)
    infer1_ms = median_ms(infer(1), args.warmup, args.reps, sync)
    infer8_ms = median_ms(infer(args.batch), args.warmup, args.reps, sync)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "impl": "pytorch",
        "arch": arch,
        "params": params,
        "threads": args.threads,
        "train_ms": train_ms,
        "infer1_ms": infer1_ms,
        "infer8_ms": infer8_ms,
        "fwd_gflop_batch": gflop,
        "peak_rss_mb": peak_mb,
        "peak_allocated_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "device": args.device,
        "precision": args.precision,
        "torch": torch.__version__,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--arch", choices=ARCHS, action="append")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=["f32", "bf16", "f16"], default="f32")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    archs = args.arch or ARCHS
    if args.child:
        print(json.dumps(bench_one(archs[0], args)), flush=True)
        return
    # One child process per architecture: separate peak-memory figures.
    for arch in archs:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", "--arch", arch,
               "--threads", str(args.threads), "--batch", str(args.batch), "--size", str(args.size),
               "--warmup", str(args.warmup), "--reps", str(args.reps),
               "--device", args.device, "--precision", args.precision]
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            sys.stderr.write(out.stderr)
            sys.exit(out.returncode)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(f"{arch:14} params {row['params']:>10,}  train {row['train_ms']:8.1f} ms  "
                  f"infer b1 {row['infer1_ms']:7.1f} ms  b{args.batch} {row['infer8_ms']:8.1f} ms  "
                  f"peak {row['peak_rss_mb']:7.0f} MB  "
                  f"{3 * row['fwd_gflop_batch'] / row['train_ms'] * 1e3:6.1f} GFLOP/s (train)",
                  flush=True)


if __name__ == "__main__":
    main()
