#!/usr/bin/env python3
"""Reads a run's TensorBoard event files (RUN/tb/) with the tensorboard package's event
accumulator and prints every epoch's scalars next to metrics.jsonl; exits 1 on a mismatch.

    python3 benches/tb_check.py RUN
"""
import json
import math
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def epoch_scalars(rec):
    """The tags hmreg logs for one metrics.jsonl record (src/train/tb_log.rs: epoch_scalars)."""
    out = {"loss/train": rec["train_loss"], "loss/valid": rec["valid_loss"]}
    out.update({f"valid/{k}": v for k, v in rec["metrics"].items()})
    out["train/lr"] = rec["lr"]
    out["train/images_per_second"] = rec["images_per_second"]
    return out


def main():
    run = Path(sys.argv[1])
    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    logged = {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}
    bad = 0
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        for tag, want in epoch_scalars(rec).items():
            got = logged.get(tag, {}).get(rec["epoch"])
            ok = got is not None and math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-12)
            bad += not ok
            print(f"epoch {rec['epoch']:3} {tag:26} jsonl {want:<14.7g} tb {'-' if got is None else format(got, '14.7g')} "
                  f"{'ok' if ok else 'MISMATCH'}")
    print("images:", {t: len(acc.Images(t)) for t in acc.Tags()["images"]})
    print("step scalars:", len(logged.get("step/train_loss", {})))
    print("mismatches:", bad)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
