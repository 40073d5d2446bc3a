#!/usr/bin/env python3
"""hmreg predict next to dlib's HOG face detector and 68-point shape predictor, on the same photos.

    python3 -m venv venv && venv/bin/pip install "setuptools<70" dlib-bin face-recognition-models numpy pillow
    cargo build --release --bin hmreg
    venv/bin/python benches/versus_dlib.py [--data ../shared/data/300w-helen/val] [--sets val,rotated,composed]
        [--hmreg target/release/hmreg] [--hmreg-arg=--min-face --hmreg-arg=40] [--json results.json]

Three sets of labelled photos, built from one folder of iBUG-68 faces in hmreg's layout
(images/<stem>.jpg, landmarks/<stem>.txt; default ../shared/data/300w-helen/val):

- val: the images as they are (face-centred crops).
- rotated: each face rotated about its landmark centre by each of --angles (0, 15, 30, 45, 60
  degrees; the sign alternates from face to face so that both tilts occur) and pasted at one of
  --sizes (the longer side of its 68 points' box, in pixels; cycled so that every angle sees every
  size) at a random place of a --canvas photo whose background is another face image of the set,
  stretched, cut into shuffled and flipped tiles (so that it holds no face) and blurred. The face is cut out with a feathered disk around
  its points (radius 0.8 of its landmark box's longer side), so no straight crop edge appears.
- composed: --per-photo faces (a random count up to it) of the set on one --canvas photo, upright
  with a little roll (up to --composed-roll degrees) and random sizes, in disjoint grid cells; each
  face of the set appears in --composed-rounds photos.

Labels are moved with the pixels by the same affine map, in the labels' own convention (300-W
counts pixels from 1: the map is applied in continuous pixel coordinates and the offset kept), so
each tool is measured against the same kind of label as on the original images. Both tools report
points with the first pixel's centre at 0 (hmreg by its convention, dlib as pixel indices); they
are moved into the labels' convention (--label-origin, 1 for 300-W) before scoring, and hmreg's
given boxes are moved out of it. Everything
generated is seeded (--seed) and written under --work (a temporary folder unless given).

Per set and tool the script prints (markdown):

- faces found: labelled faces with a matched detection. A detection matches a labelled face when
  the box of its predicted points overlaps the box of the labelled points with IoU > --iou (0.3);
  pairs are taken greedily, best IoU first, one detection per face. Both tools are judged by their
  points' box, not by their detector boxes, whose conventions differ (dlib's HOG box is the inner
  face, hmreg's detector box is SeetaFace's): the points' box means the same thing for both. 0.3
  keeps a detection whose points are the right face at a wrong scale (a box 1.8 times too large or
  small at the right centre has IoU 0.3: the face was found and the NME punishes the scale) and
  rejects a neighbour: the faces of a composed photo lie in disjoint cells, so their boxes do not
  overlap.
- extra: detections matched to no labelled face (false detections, or faces of the background).
- NME on the faces found, on the faces both tools found, and given the labelled boxes. NME is
  hmreg's (src/metrics): per face the mean point-to-point distance over the 68 points divided by
  the distance between the labelled outer eye corners (points 36 and 45, 0-based), averaged over
  faces; printed in percent.
- given the labelled boxes: hmreg gets the box of the labelled points with `--bbox x,y,w,h` (its
  crop convention is that box); dlib's shape predictor gets a dlib.rectangle made from the same box
  by dlib's own convention, fitted on the val faces that dlib's detector found: the medians of its
  box side over the landmark box's longer side and of its centre's offset from the landmark box's
  centre (in landmark box sides). The fit is printed.
- time / image: wall time over the images of the detection run (decode, detection, landmarks;
  hmreg's whole process, model loading included, divided by the image count). dlib runs one
  thread; hmreg uses its thread pool (all cores unless RAYON_NUM_THREADS says otherwise).

The rotated set also gets a table by angle. dlib's Python API returns integer point coordinates
(dlib.point); they are used as they come, since that is what its users get. The mean signed error
(x, y) of each tool on the faces found is printed too: it shows a constant offset between a tool's
convention and the labels' (such as counting pixels from 0 or 1).
"""
import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
# Set from --label-origin in main().
LABEL_ORIGIN = 1.0
EYES = (36, 45)


# ---------------------------------------------------------------------------------------------
# Data: labelled photos


class Photo:
    """An image file and the 68 labelled points of each face in it (arrays of shape (68, 2))."""

    def __init__(self, path, faces, tags=None):
        self.path = Path(path)
        self.faces = faces
        # Per face: what it was made with (angle, size), for the breakdowns.
        self.tags = tags or [{} for _ in faces]


def read_points(path):
    lines = Path(path).read_text().split("\n")
    try:
        n = int(lines[0].strip())
        pts = np.array([[float(v) for v in lines[1 + i].split()[:2]] for i in range(n)])
    except (ValueError, IndexError) as e:
        sys.exit(f"{path}: not a landmark file (count line, then one 'x y' line per point): {e}")
    if pts.shape != (68, 2):
        sys.exit(f"{path}: {len(pts)} points; this comparison needs iBUG-68 faces")
    return pts


def load_folder(root, limit):
    root = Path(root)
    if not (root / "images").is_dir():
        sys.exit(f"{root / 'images'}: no such folder (--data takes a folder with images/ and landmarks/)")
    images = sorted(p for p in (root / "images").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not images:
        sys.exit(f"{root / 'images'}: no images")
    if limit:
        images = images[:limit]
    photos = []
    for img in images:
        lm = root / "landmarks" / (img.stem + ".txt")
        if not lm.exists():
            sys.exit(f"{lm}: missing (every image needs its landmark file)")
        photos.append(Photo(img, [read_points(lm)]))
    return photos


def landmark_box(pts):
    pts = np.asarray(pts, float)
    lo, hi = pts.min(0), pts.max(0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])


def background(rng, sources, size):
    """A photo-like background without faces: another image of the set stretched over the
    canvas, cut into 4 x 4 tiles that are shuffled and flipped (a whole stretched face, even
    blurred, is still found by both detectors), then blurred."""
    src = Image.open(rng.choice(sources)).convert("RGB").resize(size, Image.BILINEAR)
    W, H = size
    xs = [round(i * W / 4) for i in range(5)]
    ys = [round(i * H / 4) for i in range(5)]
    cells = [(xs[i], ys[j], xs[i + 1], ys[j + 1]) for j in range(4) for i in range(4)]
    order = rng.sample(range(16), 16)
    out = Image.new("RGB", size)
    for dst, k in zip(cells, order):
        tile = src.crop(cells[k]).resize((dst[2] - dst[0], dst[3] - dst[1]), Image.BILINEAR)
        if rng.random() < 0.5:
            tile = tile.transpose(Image.FLIP_LEFT_RIGHT)
        if rng.random() < 0.5:
            tile = tile.transpose(Image.FLIP_TOP_BOTTOM)
        out.paste(tile, dst[:2])
    return out.filter(ImageFilter.GaussianBlur(radius=max(size) / 100))


def paste_face(canvas, src_path, pts, side, angle, centre_at):
    """Pastes the face of `src_path` (labelled `pts`) into `canvas`: scaled so that its landmark
    box's longer side is `side`, rotated by `angle` degrees (counter-clockwise as seen) about its
    landmark centre, which lands at `centre_at`. Returns the labels moved the same way."""
    src = Image.open(src_path).convert("RGB")
    box = landmark_box(pts)
    k = side / max(box[2], box[3])
    # Scale first with a proper low-pass filter (an affine warp would alias a large reduction),
    # then rotate. Continuous coordinates: a pixel i spans [i, i + 1); the labels count from 1
    # with pixel centres at integers, so continuous = label - 0.5 (kept as given, see the doc).
    sw, sh = max(1, round(src.width * k)), max(1, round(src.height * k))
    kx, ky = sw / src.width, sh / src.height
    small = src.resize((sw, sh), Image.LANCZOS)
    c = (pts - 0.5) * [kx, ky]
    centre = (c.min(0) + c.max(0)) / 2
    r = 0.8 * side
    # Feathered disk mask in the scaled source's pixels, zero outside the source.
    yy, xx = np.mgrid[0:sh, 0:sw] + 0.5
    d = np.hypot(xx - centre[0], yy - centre[1])
    mask = np.clip((r - d) / (0.15 * r), 0, 1)
    mask_img = Image.fromarray((mask * 255).astype(np.uint8), "L")
    t = math.radians(angle)
    cos, sin = math.cos(t), math.sin(t)
    # Forward (image y points down; a positive angle turns the face counter-clockwise on screen):
    # q = R (p - centre) + at, R = [[cos, sin], [-sin, cos]]. PIL wants the inverse map.
    rot = np.array([[cos, sin], [-sin, cos]])
    inv = rot.T
    at = np.asarray(centre_at, float)
    off = centre - inv @ at
    data = (inv[0, 0], inv[0, 1], off[0], inv[1, 0], inv[1, 1], off[1])
    warped = small.transform(canvas.size, Image.AFFINE, data, resample=Image.BICUBIC)
    wmask = mask_img.transform(canvas.size, Image.AFFINE, data, resample=Image.BILINEAR)
    canvas.paste(warped, (0, 0), wmask)
    q = (c - centre) @ rot.T + at
    return q + 0.5


def make_rotated(photos, work, rng, angles, sizes, canvas_size):
    out = work / "rotated"
    out.mkdir(parents=True, exist_ok=True)
    sources = [p.path for p in photos]
    made = []
    W, H = canvas_size
    for i, ph in enumerate(photos):
        for j, a in enumerate(angles):
            side = sizes[(i + j) % len(sizes)]
            signed = a if i % 2 == 0 else -a
            canvas = background(rng, [s for s in sources if s != ph.path], canvas_size)
            r = 0.8 * side + 2
            at = (rng.uniform(r, W - r), rng.uniform(r, H - r))
            q = paste_face(canvas, ph.path, ph.faces[0], side, signed, at)
            path = out / f"{ph.path.stem}_a{a:02d}.jpg"
            canvas.save(path, quality=92)
            made.append(Photo(path, [q], [{"angle": a, "size": side}]))
    return made


def make_composed(photos, work, rng, canvas_size, per_photo, rounds, max_roll):
    out = work / "composed"
    out.mkdir(parents=True, exist_ok=True)
    W, H = canvas_size
    cols = math.ceil(math.sqrt(per_photo * W / H))
    rows = math.ceil(per_photo / cols)
    cw, ch = W / cols, H / rows
    # The largest face whose feathered disk (radius 0.8 side) stays inside its cell.
    biggest = min(cw, ch) / 2 / 0.8 - 4
    order = [p for _ in range(rounds) for p in rng.sample(photos, len(photos))]
    sources = [p.path for p in photos]
    made = []
    n = 0
    while order:
        k = min(len(order), rng.randint(max(2, per_photo - 2), per_photo))
        group, order = order[:k], order[k:]
        cells = rng.sample(range(cols * rows), k)
        canvas = background(rng, sources, canvas_size)
        faces, tags = [], []
        for ph, cell in zip(group, cells):
            side = rng.uniform(60, biggest)
            r = 0.8 * side
            cx0, cy0 = (cell % cols) * cw, (cell // cols) * ch
            at = (rng.uniform(cx0 + r, cx0 + cw - r), rng.uniform(cy0 + r, cy0 + ch - r))
            roll = rng.uniform(-max_roll, max_roll)
            faces.append(paste_face(canvas, ph.path, ph.faces[0], side, roll, at))
            tags.append({"size": round(side), "angle": round(roll)})
        path = out / f"group_{n:03d}.jpg"
        canvas.save(path, quality=92)
        made.append(Photo(path, faces, tags))
        n += 1
    return made


def set_rng(seed, name):
    return random.Random(f"{seed}/{name}")


def stored_or_made(work, name, key, make):
    """The set `name` as generated before in `work` with the same parameters, or made now (and its
    labels stored beside the photos, so that a later run with --work can reuse it)."""
    manifest = work / f"{name}.json"
    key = json.loads(json.dumps(key))
    if manifest.exists():
        doc = json.loads(manifest.read_text())
        if doc.get("key") == key and all(Path(p["path"]).exists() for p in doc["photos"]):
            return [Photo(p["path"], [np.array(f) for f in p["faces"]], p["tags"]) for p in doc["photos"]]
    photos = make()
    manifest.write_text(json.dumps({"key": key, "photos": [
        {"path": str(p.path), "faces": [f.tolist() for f in p.faces], "tags": p.tags} for p in photos]}))
    return photos


# ---------------------------------------------------------------------------------------------
# The tools. Each returns, per photo, a list of faces as (68, 2) arrays of predicted points (and
# for dlib its rectangles), plus the wall time of the detection run.


def dlib_models():
    import dlib
    import face_recognition_models

    return dlib, dlib.get_frontal_face_detector(), dlib.shape_predictor(
        face_recognition_models.pose_predictor_model_location())


def shape_points(shape):
    return np.array([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)], float)


def cached(work, name, key, compute):
    """dlib's results on a set, from `work` when an earlier run with the same key stored them
    (dlib does not change between runs; hmreg's binary may, so hmreg always runs)."""
    f = work / f"{name}.dlib.json"
    key = json.loads(json.dumps(key))
    if f.exists():
        doc = json.loads(f.read_text())
        if doc.get("key") == key:
            return doc["value"]
    value = compute()
    f.write_text(json.dumps({"key": key, "value": value}))
    return value


def run_dlib(photos, upsample):
    dlib, detector, predictor = dlib_models()
    found, rects = [], []
    t0 = time.perf_counter()
    for ph in photos:
        img = np.asarray(Image.open(ph.path).convert("RGB"))
        dets = detector(img, upsample)
        found.append([shape_points(predictor(img, d)).tolist() for d in dets])
        rects.append([(d.left(), d.top(), d.right(), d.bottom()) for d in dets])
    return found, rects, time.perf_counter() - t0


def run_dlib_boxes(photos, convention):
    dlib, _, predictor = dlib_models()
    scale, dx, dy = convention
    out = []
    for ph in photos:
        img = np.asarray(Image.open(ph.path).convert("RGB"))
        faces = []
        for pts in ph.faces:
            x, y, w, h = landmark_box(pts)
            s = max(w, h)
            cx, cy = x + w / 2 + dx * s, y + h / 2 + dy * s
            half = scale * s / 2
            r = dlib.rectangle(round(cx - half), round(cy - half), round(cx + half), round(cy + half))
            faces.append(shape_points(predictor(img, r)).tolist())
        out.append(faces)
    return out


def hmreg_json(binary, extra, inputs, stdin=None):
    cmd = [binary, "predict", *inputs, "--json", *extra]
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if p.returncode != 0 and not p.stdout.strip():
        sys.exit(f"{' '.join(cmd[:4])} ...: exit {p.returncode}\n{p.stderr[-2000:]}")
    try:
        doc = json.loads(p.stdout)
    except json.JSONDecodeError as e:
        sys.exit(f"hmreg predict --json did not print JSON ({e}):\n{p.stdout[:500]}\n{p.stderr[-1000:]}")
    for f in doc.get("failures", []):
        print(f"warning: hmreg could not read {f.get('path')}: {f.get('error')}", file=sys.stderr)
    by_path = {}
    for pred in doc["predictions"]:
        by_path[Path(pred["path"]).resolve()] = [
            np.array([[q["x"], q["y"]] for q in face["points"]], float) for face in pred["faces"]]
    return by_path


def run_hmreg(photos, binary, extra):
    listing = "".join(f"{ph.path}\n" for ph in photos)
    t0 = time.perf_counter()
    by_path = hmreg_json(binary, extra, ["-"], stdin=listing)
    took = time.perf_counter() - t0
    return [by_path.get(ph.path.resolve(), []) for ph in photos], took


def run_hmreg_boxes(photos, binary, extra):
    # --bbox applies to every image of a call, so each photo gets its own call.
    out = []
    for ph in photos:
        args = [str(ph.path)]
        for pts in ph.faces:
            # hmreg's boxes are in its own convention (the first pixel's centre at 0).
            x, y, w, h = landmark_box(pts - LABEL_ORIGIN)
            args.append(f"--bbox={x:.2f},{y:.2f},{w:.2f},{h:.2f}")
        by_path = hmreg_json(binary, extra, args)
        out.append(by_path.get(ph.path.resolve(), []))
    return out


# ---------------------------------------------------------------------------------------------
# Matching and figures


def iou(a, b):
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def match(photo, detections, threshold):
    """For each labelled face, the index of its detection (or None), and the unmatched count."""
    pairs = []
    for i, gt in enumerate(photo.faces):
        gb = landmark_box(gt)
        for j, det in enumerate(detections):
            v = iou(gb, landmark_box(det))
            if v > threshold:
                pairs.append((v, i, j))
    pairs.sort(reverse=True)
    face_to, used = [None] * len(photo.faces), set()
    for _, i, j in pairs:
        if face_to[i] is None and j not in used:
            face_to[i] = j
            used.add(j)
    return face_to, len(detections) - len(used)


def nme(pred, gt):
    norm = np.hypot(*(gt[EYES[0]] - gt[EYES[1]]))
    return float(np.hypot(*(pred - gt).T).mean() / norm)


class Result:
    """One tool on one set: per labelled face its matched points (or None) and boxed points."""

    def __init__(self, photos, found, boxed, seconds, threshold):
        # Both tools give pixel coordinates with the first pixel's centre at 0; the labels count
        # from LABEL_ORIGIN.
        found = [[np.asarray(f, float) + LABEL_ORIGIN for f in fs] for fs in found]
        if boxed is not None:
            boxed = [[np.asarray(f, float) + LABEL_ORIGIN for f in fs] for fs in boxed]
        self.faces = []  # (photo index, face index)
        self.found = []  # points or None
        self.boxed = []
        self.extra = 0
        for k, ph in enumerate(photos):
            face_to, extra = match(ph, found[k], threshold)
            self.extra += extra
            for i, j in enumerate(face_to):
                self.faces.append((k, i))
                self.found.append(None if j is None else found[k][j])
                self.boxed.append(boxed[k][i] if boxed is not None and i < len(boxed[k]) else None)
        self.seconds = seconds
        self.images = len(photos)


def mean_nme(photos, res, which, keep=None):
    errs = []
    for n, (k, i) in enumerate(res.faces):
        pts = which[n]
        if pts is None or (keep is not None and not keep[n]):
            continue
        errs.append(nme(pts, photos[k].faces[i]))
    return (100 * float(np.mean(errs)), len(errs)) if errs else (float("nan"), 0)


def bias(photos, res):
    d = [res.found[n] - photos[k].faces[i] for n, (k, i) in enumerate(res.faces) if res.found[n] is not None]
    return np.mean(np.concatenate(d), 0) if d else np.array([np.nan, np.nan])


def fit_dlib_convention(photos, found, rects, threshold):
    """Medians of dlib's box side / landmark box longer side and of its centre's offset from the
    landmark box centre (in landmark box sides), over the labelled faces dlib found."""
    scale, dx, dy = [], [], []
    for k, ph in enumerate(photos):
        face_to, _ = match(ph, found[k], threshold)
        for i, j in enumerate(face_to):
            if j is None:
                continue
            x, y, w, h = landmark_box(ph.faces[i])
            s = max(w, h)
            left, top, right, bottom = rects[k][j]
            # dlib's rectangles are inclusive: right - left + 1 pixels wide.
            side = ((right - left + 1) + (bottom - top + 1)) / 2
            scale.append(side / s)
            dx.append(((left + right) / 2 - (x + w / 2)) / s)
            dy.append(((top + bottom) / 2 - (y + h / 2)) / s)
    if not scale:
        sys.exit("dlib found no labelled face: no box convention to fit")
    return float(np.median(scale)), float(np.median(dx)), float(np.median(dy)), len(scale)


def fmt(v):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def table(name, photos, results):
    total = sum(len(p.faces) for p in photos)
    both = [all(r.found[n] is not None for r in results.values()) for n in range(total)]
    print(f"\n### {name}: {len(photos)} photos, {total} labelled faces\n")
    print("| tool | faces found | extra detections | NME on the faces found (%) | NME on the faces both found (%) "
          "| NME given the labelled boxes (%) | time / image (s) | mean error x, y (px) |")
    print("|---|---|---|---|---|---|---|---|")
    rows = {}
    for tool, r in results.items():
        f, nf = mean_nme(photos, r, r.found)
        b, nb = mean_nme(photos, r, r.found, keep=both)
        g, _ = mean_nme(photos, r, r.boxed)
        bx, by = bias(photos, r)
        print(f"| {tool} | {nf} / {total} | {r.extra} | {fmt(f)} | {fmt(b)} ({nb}) | {fmt(g)} | "
              f"{r.seconds / r.images:.3f} | {fmt(bx)}, {fmt(by)} |")
        rows[tool] = {"found": nf, "faces": total, "extra": r.extra, "nme_found": f, "nme_both": b,
                      "both": nb, "nme_given_box": g, "seconds_per_image": r.seconds / r.images,
                      "bias_px": [float(bx), float(by)]}
    return rows


def by_tag(photos, results, tag, label):
    values = sorted({t[tag] for p in photos for t in p.tags})
    tools = list(results)
    print(f"\nBy {label}:\n")
    head = " | ".join(f"{t} found | {t} NME found | {t} NME given box" for t in tools)
    print(f"| {label} | faces | {head} |")
    print("|---|---|" + "---|" * (3 * len(tools)))
    flat_tags = [p.tags[i] for p in photos for i in range(len(p.faces))]
    rows = []
    for v in values:
        keep = [t[tag] == v for t in flat_tags]
        cells = []
        row = {label: v, "faces": sum(keep)}
        for t in tools:
            r = results[t]
            f, nf = mean_nme(photos, r, r.found, keep=keep)
            g, _ = mean_nme(photos, r, r.boxed, keep=keep)
            cells.append(f"{nf} | {fmt(f)} | {fmt(g)}")
            row[t] = {"found": nf, "nme_found": f, "nme_given_box": g}
        print(f"| {v} | {sum(keep)} | " + " | ".join(cells) + " |")
        rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/300w-helen/val"),
                    help="folder with images/ and landmarks/ (iBUG-68)")
    ap.add_argument("--sets", default="val,rotated,composed")
    ap.add_argument("--hmreg", default=str(ROOT / "target/release/hmreg"), help="the hmreg binary")
    ap.add_argument("--hmreg-arg", action="append", default=[],
                    help="an extra flag for hmreg predict (repeatable; write --hmreg-arg=--flag)")
    ap.add_argument("--name", default="hmreg", help="hmreg's row label (e.g. to tell binaries apart)")
    ap.add_argument("--dlib-upsample", type=int, default=1,
                    help="dlib detector upsampling (1: face_recognition's default, faces from ~40 px)")
    ap.add_argument("--limit", type=int, default=0, help="use the first N faces of --data (0: all)")
    ap.add_argument("--angles", default="0,15,30,45,60")
    ap.add_argument("--sizes", default="80,160,320", help="landmark box sides of the rotated set (px)")
    ap.add_argument("--canvas", default="1280x960", help="size of the rotated and composed photos")
    ap.add_argument("--per-photo", type=int, default=6, help="most faces in a composed photo")
    ap.add_argument("--composed-rounds", type=int, default=2, help="composed photos each face is in")
    ap.add_argument("--composed-roll", type=float, default=10.0, help="largest roll in composed photos")
    ap.add_argument("--iou", type=float, default=0.3, help="match threshold (points' box IoU)")
    ap.add_argument("--given-boxes", default="val,rotated,composed",
                    help="the sets that also run given the labelled boxes (hmreg starts once per photo there: "
                         "slow on many photos; '' for none)")
    ap.add_argument("--tools", default="dlib,hmreg")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", help="where the generated photos go (kept, and with them dlib's results, "
                    "reused by a later run with the same parameters; default: a temporary folder)")
    ap.add_argument("--json", help="also write every figure to this file")
    ap.add_argument("--label-origin", type=float, default=1.0,
                    help="where the labels put the first pixel's centre (300-W: 1); both tools' "
                         "points (first pixel's centre at 0) are moved into the labels' convention")
    args = ap.parse_args()
    global LABEL_ORIGIN
    LABEL_ORIGIN = args.label_origin

    sets = [s for s in args.sets.split(",") if s]
    tools = [t for t in args.tools.split(",") if t]
    for s in sets:
        if s not in ("val", "rotated", "composed"):
            sys.exit(f"--sets: unknown set {s!r} (val, rotated, composed)")
    if "hmreg" in tools and not os.access(args.hmreg, os.X_OK):
        sys.exit(f"{args.hmreg}: no hmreg binary (cargo build --release --bin hmreg, or --hmreg PATH)")
    W, H = (int(v) for v in args.canvas.lower().split("x"))
    angles = [int(a) for a in args.angles.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="versus_dlib_"))

    base = load_folder(args.data, args.limit)
    built = {}
    t0 = time.perf_counter()
    # Each set draws from its own generator, so a set is the same whichever others are built.
    if "val" in sets:
        built["val"] = base
    if "rotated" in sets:
        built["rotated"] = stored_or_made(work, "rotated", ["tiles", args.data, args.limit, args.seed, angles, sizes, W, H],
                                          lambda: make_rotated(base, work, set_rng(args.seed, "rotated"),
                                                               angles, sizes, (W, H)))
    if "composed" in sets:
        built["composed"] = stored_or_made(
            work, "composed",
            ["tiles", args.data, args.limit, args.seed, W, H, args.per_photo, args.composed_rounds, args.composed_roll],
            lambda: make_composed(base, work, set_rng(args.seed, "composed"), (W, H), args.per_photo,
                                  args.composed_rounds, args.composed_roll))
    print(f"data: {args.data} ({len(base)} faces); generated photos in {work} "
          f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    iod = [np.hypot(*(p.faces[0][EYES[0]] - p.faces[0][EYES[1]])) for p in base]
    print(f"val inter-ocular distance: median {np.median(iod):.0f} px (10-90 %: "
          f"{np.percentile(iod, 10):.0f}-{np.percentile(iod, 90):.0f})", file=sys.stderr)

    # dlib's box convention, fitted on the val faces its detector finds (upright face crops).
    convention = None
    report = {"config": vars(args), "sets": {}}
    def dlib_found(name, photos):
        key = [[str(p.path) for p in photos], args.dlib_upsample]
        return cached(work, f"{name}-found", key, lambda: run_dlib(photos, args.dlib_upsample))

    if "dlib" in tools:
        found, rects, secs = dlib_found("val", base)
        s, dx, dy, n = fit_dlib_convention(base, found, rects, args.iou)
        convention = (s, dx, dy)
        print(f"\ndlib's box convention, fitted on {n} val faces it found: side = {s:.3f} x the landmark "
              f"box's longer side, centre offset ({dx:+.3f}, {dy:+.3f}) x that side")
        report["dlib_convention"] = {"scale": s, "dx": dx, "dy": dy, "faces": n}

    for name, photos in built.items():
        results = {}
        no_boxes = name not in args.given_boxes.split(",")
        for tool in tools:
            print(f"{name}: {tool} ...", file=sys.stderr)
            if tool == "dlib":
                found, _, secs = dlib_found(name, photos)
                key = [[str(p.path) for p in photos], convention]
                boxed = None if no_boxes else cached(
                    work, f"{name}-boxed", key, lambda: run_dlib_boxes(photos, convention))
                found = [[np.array(f) for f in fs] for fs in found]
                boxed = None if boxed is None else [[np.array(f) for f in fs] for fs in boxed]
                results["dlib HOG + shape_predictor_68"] = Result(photos, found, boxed, secs, args.iou)
            elif tool == "hmreg":
                found, secs = run_hmreg(photos, args.hmreg, args.hmreg_arg)
                boxed = None if no_boxes else run_hmreg_boxes(photos, args.hmreg, args.hmreg_arg)
                results[args.name] = Result(photos, found, boxed, secs, args.iou)
            else:
                sys.exit(f"--tools: unknown tool {tool!r} (dlib, hmreg)")
        entry = {"table": table(name, photos, results)}
        if name == "rotated":
            entry["by_angle"] = by_tag(photos, results, "angle", "angle")
            entry["by_size"] = by_tag(photos, results, "size", "size")
        report["sets"][name] = entry
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=float))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
