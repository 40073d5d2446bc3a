#!/usr/bin/env python3
"""ONNX Runtime's inference time on a model `hmreg export` wrote: the bar for `hmreg predict` on a
CPU. The speed bench runs it on the file its hmreg child exported from the model it timed.

    pip install onnxruntime numpy
    python3 benches/ort_reference.py --model model.onnx [--threads 2] [--batch 8] [--size 256]
        [--reps 5] [--warmup 1] --json

The session is ONNX Runtime's CPU provider with every graph optimisation, `--threads` intra-op
threads and one inter-op thread (sequential execution), as a deployer would set it for a fixed
core count. Inputs are uniform in [-2, 2), as the hmreg rows use. Prints the medians of
`--reps` runs after `--warmup` at batch 1 and `--batch`, and with `--json` one result line.
"""
import argparse
import json
import os
import sys

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_pytorch import median_ms  # noqa: E402 (imports torch only when a model is built)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    rng = np.random.default_rng(1)
    row = {"onnxruntime": ort.__version__}
    for key, b in (("infer1_ms", 1), ("infer8_ms", a.batch)):
        x = rng.uniform(-2.0, 2.0, (b, 3, a.size, a.size)).astype(np.float32)
        row[key] = median_ms(lambda: sess.run(None, {name: x}), a.warmup, max(1, a.reps))
    if a.json:
        print(json.dumps(row))
    else:
        print(f"onnxruntime {row['onnxruntime']}: batch 1 {row['infer1_ms']:.1f} ms, "
              f"batch {a.batch} {row['infer8_ms']:.1f} ms")


if __name__ == "__main__":
    main()
