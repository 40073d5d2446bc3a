#!/usr/bin/env python3
"""Checks hmreg's ONNX export of the full-size models with ONNX's checker and ONNX Runtime, and
times both runtimes. Exits 1 when a model fails the checker or differs from hmreg.

    pip install onnx onnxruntime numpy
    cargo build --release --example onnx_reference
    python3 benches/onnx_check.py [--threads 2] [--models face68,unet-resnet18,hrnet18]

For each model, examples/onnx_reference.rs exports it (opset 17, dynamic batch, top-k decoder in
the graph) and writes random inputs at batch 1 and 8 with hmreg's eval-mode heatmaps and decoded
points, and hmreg's forward time (median of 5). This script runs onnx.checker.check_model
(full_check: shape inference too), ONNX Runtime on the CPU with the same number of threads
(intra-op; inter-op 1), compares the heatmaps (max |ort - hmreg| / max |hmreg| <= 1e-4) and the
points (<= 1e-3 px), and times ORT the same way (median of 5 after one warm-up). Prints a
markdown table.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
REPEAT = 5


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default="face68,unet-resnet18,hrnet18")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--reference", default=str(ROOT / "target/release/examples/onnx_reference"),
                    help="the built examples/onnx_reference binary")
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    rows, bad = [], 0
    for name in args.models.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, HMREG_THREADS=str(args.threads))
            res = subprocess.run([args.reference, name, tmp, *map(str, batches)],
                                 env=env, capture_output=True, text=True)
            if res.returncode != 0:
                print(res.stderr, file=sys.stderr)
                sys.exit(1)
            hmreg_ms = {r["batch"]: r["hmreg_ms"] for r in map(json.loads, res.stdout.split("\n")[:-1])}
            path = os.path.join(tmp, "model.onnx")
            onnx.checker.check_model(path, full_check=True)
            model = onnx.load(path)
            meta = {p.key: p.value for p in model.metadata_props}
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = args.threads
            opts.inter_op_num_threads = 1
            sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            for n in batches:
                x = np.load(os.path.join(tmp, f"input_b{n}.npy"))
                want = np.load(os.path.join(tmp, f"heatmaps_b{n}.npy"))
                want_pts = np.load(os.path.join(tmp, f"points_b{n}.npy"))
                maps, pts, _scores = sess.run(["heatmaps", "points", "scores"], {"image": x})
                rel = float(np.abs(maps - want).max() / np.abs(want).max())
                px = float(np.abs(pts - want_pts).max())
                times = []
                sess.run(None, {"image": x})
                for _ in range(REPEAT):
                    t0 = time.perf_counter()
                    sess.run(None, {"image": x})
                    times.append((time.perf_counter() - t0) * 1e3)
                ort_ms = sorted(times)[REPEAT // 2]
                ok = rel <= 1e-4 and px <= 1e-3
                bad += not ok
                rows.append((name, meta.get("arch", "?"), n, len(model.graph.node),
                             os.path.getsize(path), rel, px, hmreg_ms[n], ort_ms, ok))
    print(f"ONNX Runtime {ort.__version__}, onnx {onnx.__version__}, {args.threads} threads, "
          f"checker: passed for every model")
    print()
    print("| model | arch | batch | nodes | file (MB) | max rel. diff heatmaps | max diff points (px) "
          "| hmreg (ms) | ORT (ms) | hmreg / ORT | ok |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, arch, n, nodes, size, rel, px, h, o, ok in rows:
        print(f"| {name} | {arch} | {n} | {nodes} | {size / 1e6:.1f} | {rel:.2e} | {px:.2e} "
              f"| {h:.1f} | {o:.1f} | {h / o:.2f} | {'yes' if ok else 'NO'} |")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
