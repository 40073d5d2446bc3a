"""Tracking and alignment on a real face: makes a frame sequence and a photo series from one
landmarked image (a 300w-helen val face, say), runs `hmreg track` and `hmreg align` on them and
prints the tracked points' error against the labels moved with the pixels.

    python3 benches/real_sequence.py ../shared/data/300w-helen/val/images/<stem>.jpg --work /tmp/seq

The sequence: --frames frames of 640x480, the face scaled by 0.55, rolling by up to 8 degrees,
its centre on a circle of 120 x 60 px (x) and a figure-eight (y), over a plain background: up to
19 px of motion per frame at 40 frames. The series: 8 photos of 480x480 under random similarities
(scale 0.6-0.95, roll up to 20 degrees, shift up to 50 px; seeded). Writes <work>/frames,
<work>/photos, <work>/track_out (annotated frames, track.gif, track.json) and <work>/align_out
(aligned frames, contact-sheet.png, align.gif). Labels count pixels from --label-origin (300-W: 1).
Needs Pillow.
"""
import argparse
import json
import math
import random
import subprocess
import sys
from pathlib import Path

from PIL import Image


def similarity(scale, deg, centre_at, src_size):
    """(forward, inverse-for-PIL) of: the image's centre to `centre_at`, scaled and turned."""
    t = math.radians(deg)
    c, s = math.cos(t), math.sin(t)
    sx, sy = src_size[0] / 2, src_size[1] / 2
    cx, cy = centre_at

    def forward(p):
        x, y = p[0] - sx, p[1] - sy
        return [scale * (c * x - s * y) + cx, scale * (s * x + c * y) + cy]

    a, b, d, e = c / scale, s / scale, -s / scale, c / scale
    inverse = (a, b, sx - a * cx - b * cy, d, e, sy - d * cx - e * cy)
    return forward, inverse


def frame_pose(i, n):
    u = i / n * 2 * math.pi
    return 0.55, 8 * math.sin(u), (320 + 120 * math.cos(u), 240 + 60 * math.sin(2 * u))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("image", help="an image with its landmark file in ../landmarks/<stem>.txt")
    ap.add_argument("--work", required=True, help="where the frames, photos and results go")
    ap.add_argument("--hmreg", default=str(Path(__file__).resolve().parent.parent / "target/release/hmreg"))
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--label-origin", type=float, default=1.0)
    args = ap.parse_args()
    image = Path(args.image)
    lm = image.parent.parent / "landmarks" / (image.stem + ".txt")
    lines = lm.read_text().split("\n")
    labels = [[float(v) - args.label_origin for v in lines[1 + i].split()[:2]] for i in range(int(lines[0]))]
    src = Image.open(image).convert("RGB")
    work = Path(args.work)
    for d in ("frames", "photos"):
        (work / d).mkdir(parents=True, exist_ok=True)
    truths = []
    for i in range(args.frames):
        scale, deg, at = frame_pose(i, args.frames)
        forward, inverse = similarity(scale, deg, at, src.size)
        src.transform((640, 480), Image.AFFINE, inverse, resample=Image.BICUBIC,
                      fillcolor=(70, 90, 110)).save(work / "frames" / f"{i:03d}.png")
        truths.append([forward(p) for p in labels])
    rng = random.Random(0)
    for i in range(8):
        at = (240 + rng.uniform(-50, 50), 240 + rng.uniform(-50, 50))
        _, inverse = similarity(rng.uniform(0.6, 0.95), rng.uniform(-20, 20), at, src.size)
        src.transform((480, 480), Image.AFFINE, inverse, resample=Image.BICUBIC,
                      fillcolor=(60, 60, 60)).save(work / "photos" / f"{i}.jpg", quality=92)

    track = subprocess.run([args.hmreg, "track", str(work / "frames"), "--out", str(work / "track_out"), "--json"],
                           capture_output=True, text=True)
    if track.returncode != 0:
        sys.exit(f"hmreg track: exit {track.returncode}\n{track.stderr[-2000:]}")
    doc = json.loads(track.stdout)
    raw, smooth, ids = [], [], set()
    for f in doc["frames"]:
        if not f["faces"]:
            continue
        face = f["faces"][0]
        ids.update(x["id"] for x in f["faces"])
        truth = truths[f["frame"]]
        pts = [(p["x"], p["y"]) for p in face["points"]]
        raw.append(sum(math.dist(a, b) for a, b in zip(pts, truth)) / len(truth))
        smooth.append(sum(math.dist(a, b) for a, b in zip(face["smoothed"], truth)) / len(truth))
    print(f"track: {len(raw)} of {args.frames} frames with a face, ids {sorted(ids)}; mean point error "
          f"raw {sum(raw) / len(raw):.1f} px (worst frame {max(raw):.1f}), smoothed "
          f"{sum(smooth) / len(smooth):.1f} px (worst {max(smooth):.1f})")
    photos = sorted(str(p) for p in (work / "photos").glob("*.jpg"))
    align = subprocess.run([args.hmreg, "align", *photos, "--out", str(work / "align_out"),
                            "--gif", str(work / "align_out" / "align.gif")], capture_output=True, text=True)
    print(align.stdout + align.stderr, end="")
    print(f"align: exit {align.returncode}")


if __name__ == "__main__":
    main()
