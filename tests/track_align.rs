//! `hmreg track` and `hmreg align` on sequences the test builds: faces cut from the group photo
//! the rustface package ships, moved, scaled and rotated along known smooth paths over a
//! textured background with fresh pixel noise in every frame, run through the built-in face68
//! model and the detector.

mod common;
use common::hmreg;

use hmreg::detect::{landmark_box, DetectOptions, FaceDetector};
use hmreg::eval::choices;
use hmreg::run::{load_model, LoadedModel, ModelSource};
use hmreg::sequence::align::{eye_centres, warp_photo};
use hmreg::sequence::faces::FaceModel;
use hmreg::sequence::one_euro::OneEuroSettings;
use hmreg::sequence::similarity::Similarity;
use hmreg::sequence::tracker::{FrameFaces, TrackOptions, Tracker};
use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};

#[path = "../benches/shared/photos.rs"]
mod photos;

/// Side of a face patch; the face's detector box is about half of it.
const PATCH: u32 = 160;
const W: u32 = 320;
const H: u32 = 240;

/// Square patches around the three faces of `photos::three_faces`, each `PATCH` pixels with the
/// face's detector box about `PATCH / 2`.
fn face_patches() -> Vec<RgbImage> {
    let photo = photos::three_faces(&photos::group_photo().unwrap());
    let mut det = FaceDetector::new(&DetectOptions::default()).unwrap();
    let mut faces = det.detect(&photo);
    faces.sort_by(|a, b| a.bbox.x_min.total_cmp(&b.bbox.x_min));
    assert_eq!(faces.len(), 3);
    faces
        .iter()
        .map(|f| {
            let [x, y, w, h] = landmark_box(f.bbox).xywh();
            let side = 2.0 * w.max(h);
            let (cx, cy) = (x + w / 2.0, y + h / 2.0);
            let k = PATCH as f64 / side as f64;
            let t = Similarity::new(
                k,
                0.0,
                PATCH as f64 / 2.0 - k * cx as f64,
                PATCH as f64 / 2.0 - k * cy as f64,
            );
            warp_photo(&photo, &t, PATCH, PATCH).unwrap()
        })
        .collect()
}

fn background() -> RgbImage {
    RgbImage::from_fn(W, H, |x, y| {
        let v = ((x as f32 / 29.0).sin() * 40.0 + (y as f32 / 17.0).cos() * 40.0 + 120.0) as u8;
        Rgb([v / 2 + 60, v, 200 - v / 2])
    })
}

/// A soft round mask the size of a patch: the face and a little around it.
fn mask() -> RgbImage {
    RgbImage::from_fn(PATCH, PATCH, |x, y| {
        let c = PATCH as f32 / 2.0;
        let r = ((x as f32 - c).powi(2) + (y as f32 - c).powi(2)).sqrt() / c;
        let v = ((0.95 - r) / 0.1).clamp(0.0, 1.0) * 255.0;
        Rgb([v as u8; 3])
    })
}

/// A frame: each patch placed by its transform (patch pixels -> frame pixels) over the
/// background, then Gaussian-like pixel noise of about `noise` levels.
fn frame(
    bg: &RgbImage,
    patches: &[(&RgbImage, Similarity)],
    noise: f32,
    rng: &mut impl Rng,
) -> RgbImage {
    let m = mask();
    let mut out = bg.clone();
    for (patch, t) in patches {
        let p = warp_photo(patch, t, W, H).unwrap();
        let a = warp_photo(&m, t, W, H).unwrap();
        for (x, y, px) in out.enumerate_pixels_mut() {
            let al = a.get_pixel(x, y).0[0] as f32 / 255.0;
            let q = p.get_pixel(x, y).0;
            for (v, &qc) in px.0.iter_mut().zip(&q) {
                *v = (*v as f32 * (1.0 - al) + qc as f32 * al) as u8;
            }
        }
    }
    for px in out.pixels_mut() {
        for c in 0..3 {
            // The sum of three uniforms: close to a Gaussian of standard deviation `noise`.
            let n: f32 = (0..3).map(|_| rng.random_range(-1.0f32..1.0)).sum::<f32>() * noise;
            px.0[c] = (px.0[c] as f32 + n).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

fn builtin() -> LoadedModel {
    load_model(&ModelSource::Builtin, &hmreg::device::test_device()).unwrap()
}

fn face_model(loaded: &LoadedModel) -> FaceModel<'_> {
    let codec = choices::choose_codec(None, None, &loaded.cfg).unwrap();
    FaceModel::new(
        loaded.model.as_ref(),
        &loaded.cfg.pipeline,
        codec,
        None,
        &DetectOptions::default(),
        &hmreg::device::test_device(),
    )
    .unwrap()
}

fn track(frames: &[RgbImage], opts: TrackOptions) -> Vec<FrameFaces> {
    let loaded = builtin();
    let mut model = face_model(&loaded);
    let mut tracker = Tracker::new(opts);
    frames
        .iter()
        .map(|f| tracker.step(&mut model, f).unwrap())
        .collect()
}

/// Mean distance between corresponding points.
fn mean_dist(a: &[[f32; 2]], b: &[[f32; 2]]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(p, q)| (p[0] - q[0]).hypot(p[1] - q[1]))
        .sum::<f32>()
        / a.len() as f32
}

/// A patch placed with its centre at (cx, cy), scaled by `s` and turned by `deg` degrees.
fn place(cx: f64, cy: f64, s: f64, deg: f64) -> Similarity {
    let r = Similarity::new(s, deg.to_radians(), 0.0, 0.0);
    let c = r.apply([PATCH as f32 / 2.0; 2]);
    Similarity::new(s, deg.to_radians(), cx - c[0] as f64, cy - c[1] as f64)
}

#[test]
fn still_faces_keep_their_ids_and_smoothing_removes_the_jitter() {
    let patches = face_patches();
    let bg = background();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let (ta, tb) = (place(85.0, 120.0, 0.9, 0.0), place(235.0, 115.0, 0.9, 4.0));
    let frames: Vec<RgbImage> = (0..24)
        .map(|_| frame(&bg, &[(&patches[0], ta), (&patches[2], tb)], 6.0, &mut rng))
        .collect();
    let opts = TrackOptions::default();
    let out = track(&frames, opts.clone());
    assert!(out[0].detector_ran);
    // Two faces, two ids, the same in every frame; after the first frame no detection is
    // needed until redetect_every.
    for f in &out {
        let mut ids: Vec<u32> = f.faces.iter().map(|x| x.id).collect();
        ids.sort();
        assert_eq!(ids, vec![0, 1], "frame {}", f.frame);
    }
    assert_eq!(out.iter().filter(|f| f.detector_ran).count(), 1);
    // Jitter: mean frame-to-frame movement of the points, after the first frames (the crop
    // moves from the detector's box to the points' own box, which settles in a few frames).
    for id in [0, 1] {
        let pts = |smoothed: bool| -> Vec<Vec<[f32; 2]>> {
            out.iter()
                .map(|f| {
                    let face = f.faces.iter().find(|x| x.id == id).unwrap();
                    if smoothed {
                        face.smoothed.clone()
                    } else {
                        face.points.iter().map(|p| [p.x, p.y]).collect()
                    }
                })
                .collect()
        };
        let jitter = |seq: &[Vec<[f32; 2]>]| -> f32 {
            let s = &seq[6..];
            s.windows(2).map(|w| mean_dist(&w[0], &w[1])).sum::<f32>() / (s.len() - 1) as f32
        };
        let (raw, smooth) = (jitter(&pts(false)), jitter(&pts(true)));
        eprintln!("face {id}: jitter raw {raw:.3} px, smoothed {smooth:.3} px");
        assert!(raw > 0.02, "the noise must make the raw points move: {raw}");
        assert!(smooth * 5.0 <= raw, "raw {raw} smoothed {smooth}");
    }
}

#[test]
fn a_moving_face_is_followed_close_to_its_path_and_refound_after_leaving() {
    let patches = face_patches();
    let bg = background();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    // 0-29: an arc across the frame, growing and turning; 30-39: off the right side and back.
    let n = 46;
    let path = |i: usize| -> Similarity {
        let u = i as f64 / 29.0;
        if i < 30 {
            place(
                90.0 + 140.0 * u,
                130.0 - 30.0 * (std::f64::consts::PI * u).sin(),
                0.85 + 0.2 * u,
                -10.0 + 20.0 * u,
            )
        } else {
            // 60 px a frame out past the right side, then back in at once.
            let x = match i {
                30..=35 => 230.0 + 60.0 * (i - 29) as f64,
                _ => 230.0,
            };
            place(x, 130.0, 1.05, 10.0)
        }
    };
    let frames: Vec<RgbImage> = (0..n)
        .map(|i| frame(&bg, &[(&patches[1], path(i))], 4.0, &mut rng))
        .collect();
    let opts = TrackOptions::default();
    let out = track(&frames, opts.clone());
    // The known path: the points of the first frame carried by each frame's transform.
    let first: Vec<[f32; 2]> = out[0].faces[0].points.iter().map(|p| [p.x, p.y]).collect();
    let back = path(0).inverse().unwrap();
    let mut raw_err = Vec::new();
    let mut smooth_err = Vec::new();
    assert!(out.len() >= 30, "{} frames", out.len());
    for (i, frame) in out.iter().enumerate().take(30) {
        assert_eq!(frame.faces.len(), 1, "frame {i}");
        assert_eq!(frame.faces[0].id, 0, "frame {i}");
        let truth: Vec<[f32; 2]> = first
            .iter()
            .map(|&p| path(i).compose(&back).apply(p))
            .collect();
        let f = &frame.faces[0];
        let raw: Vec<[f32; 2]> = f.points.iter().map(|p| [p.x, p.y]).collect();
        raw_err.push(mean_dist(&raw, &truth));
        smooth_err.push(mean_dist(&f.smoothed, &truth));
    }
    // The bound: the model's own error on the moving face (its worst raw error) plus the One
    // Euro filter's lag. A first-order low-pass of cutoff fc trails a ramp of speed v by
    // v / (2 pi fc); the fastest point moves below 8 px per frame (240 px/s at 30 frames/s),
    // and the cutoff is at least min_cutoff + beta * v once the speed estimate has settled
    // (its own 1 Hz low-pass reaches half the speed within 3 frames), so half that speed
    // gives a safe fc = 1 + 0.05 * 120 = 7 Hz: a lag below 240 / (2 pi 7) = 5.5 px.
    let s = OneEuroSettings::default();
    let v = 240.0;
    let lag = v / (2.0 * std::f64::consts::PI * (s.min_cutoff + s.beta * v / 2.0));
    let worst_raw = raw_err.iter().cloned().fold(0.0, f32::max);
    let mean = |e: &[f32]| e.iter().sum::<f32>() / e.len() as f32;
    eprintln!(
        "moving: raw error mean {:.2} max {worst_raw:.2} px, smoothed mean {:.2} max {:.2} px, lag bound {lag:.2} px",
        mean(&raw_err),
        mean(&smooth_err),
        smooth_err.iter().cloned().fold(0.0, f32::max)
    );
    for (i, e) in smooth_err.iter().enumerate() {
        assert!(
            *e <= worst_raw + lag as f32,
            "frame {i}: smoothed error {e} > {worst_raw} + {lag}"
        );
    }
    // Gone while it is off the frame, then found again with its id.
    assert!(
        out[33..36].iter().all(|f| f.faces.is_empty()),
        "{:?}",
        out[33..36]
            .iter()
            .map(|f| f.faces.len())
            .collect::<Vec<_>>()
    );
    let back_in: Vec<&FrameFaces> = out[38..].iter().collect();
    assert!(back_in.iter().all(|f| f.faces.len() == 1));
    assert!(back_in.iter().all(|f| f.faces[0].id == 0));
}

/// `hmreg align` on photos made by known random similarities of one photo: every aligned
/// photo's eyes land within a pixel of the first's, a faceless photo is skipped and reported
/// (exit 1), and the GIF and the contact sheet are written.
#[test]
fn align_recovers_known_transforms_and_skips_a_photo_without_a_face() {
    let patches = face_patches();
    let source = patches[1].clone();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("series");
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut truths = Vec::new();
    for i in 0..5 {
        let t = if i == 0 {
            Similarity::new(1.5, 0.0, 0.0, 0.0)
        } else {
            place(
                120.0 + rng.random_range(-15.0..15.0),
                120.0 + rng.random_range(-15.0..15.0),
                rng.random_range(1.3..1.7),
                rng.random_range(-15.0..15.0),
            )
        };
        warp_photo(&source, &t, 240, 240)
            .unwrap()
            .save(dir.join(format!("p{i}.png")))
            .unwrap();
        truths.push(t);
    }
    background().save(dir.join("p5-scenery.png")).unwrap();
    let out = tmp.path().join("aligned");
    let gif = out.join("series.gif");
    let res = hmreg()
        .arg("align")
        .arg(&dir)
        .arg("--out")
        .arg(&out)
        .arg("--gif")
        .arg(&gif)
        // The mirrored prediction averaged in halves the model's noise on each photo.
        .arg("--flip-test")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("p5-scenery.png"), "{stderr}");
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("alignment.json")).unwrap()).unwrap();
    let photos = doc["photos"].as_array().unwrap();
    assert_eq!(photos.len(), 5);
    assert_eq!(doc["skipped"].as_array().unwrap().len(), 1);
    // Eye centres of the source face (from the model on the first photo, carried back).
    let loaded = builtin();
    let mut model = face_model(&loaded);
    let first = image::open(dir.join("p0.png")).unwrap().to_rgb8();
    let pts = model.detect_and_predict(&first).unwrap()[0].1.xy();
    let inv0 = truths[0].inverse().unwrap();
    let eyes: Vec<[f32; 2]> = eye_centres(&pts)
        .unwrap()
        .iter()
        .map(|&e| inv0.apply(e))
        .collect();
    let mut where_eyes = Vec::new();
    for (p, truth) in photos.iter().zip(&truths) {
        let t = &p["transform"];
        let a = Similarity {
            a: t["a"].as_f64().unwrap(),
            b: t["b"].as_f64().unwrap(),
            tx: t["tx"].as_f64().unwrap(),
            ty: t["ty"].as_f64().unwrap(),
        };
        // Source -> photo (known) -> aligned frame (fitted): the same map for every photo.
        let e: Vec<[f32; 2]> = eyes.iter().map(|&e| a.apply(truth.apply(e))).collect();
        where_eyes.push(e);
        // The fitted transform undoes the known one relative to the first photo.
        let rel = a.compose(truth);
        let rel0 = truths[0].scale();
        assert!((rel.scale() - rel0).abs() < 0.02 * rel0, "{p}");
    }
    for (k, e) in where_eyes.iter().enumerate() {
        for (q, r) in e.iter().zip(&where_eyes[0]) {
            let d = (q[0] - r[0]).hypot(q[1] - r[1]);
            assert!(d < 1.0, "photo {k}: eye {d:.2} px from the first photo's");
        }
    }
    let sheet = image::open(out.join("contact-sheet.png")).unwrap();
    assert!(sheet.width() > 200 && sheet.height() > 200);
    let frames = hmreg::sequence::frames::Frames::from_gif(&gif).unwrap();
    assert_eq!(frames.len(), 5);
    assert_eq!(frames.get(0).unwrap().dimensions(), (240, 240));
}

/// `hmreg track --out` on a folder of frames writes annotated frames, track.json and a GIF,
/// which `hmreg track` then reads as its input.
#[test]
fn track_cli_writes_frames_json_and_a_gif_it_can_read_back() {
    let patches = face_patches();
    let bg = background();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("frames");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..5 {
        frame(
            &bg,
            &[(&patches[0], place(120.0 + 6.0 * i as f64, 120.0, 0.9, 0.0))],
            4.0,
            &mut rng,
        )
        .save(dir.join(format!("f{i:02}.png")))
        .unwrap();
    }
    let out = tmp.path().join("out");
    let res = hmreg()
        .args(["track", "--json", "--redetect", "3"])
        .arg(&dir)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    let frames = doc["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 5);
    let found: Vec<&str> = frames
        .iter()
        .map(|f| f["faces"][0]["found"].as_str().unwrap())
        .collect();
    // Detected on frame 0, then tracked, re-detected on frame 3 (--redetect 3).
    assert_eq!(found[0], "detected");
    assert_eq!(found[1], "tracked");
    assert!(frames[3]["detector_ran"].as_bool().unwrap());
    assert!(!frames[4]["detector_ran"].as_bool().unwrap());
    assert_eq!(
        frames[2]["faces"][0]["points"].as_array().unwrap().len(),
        68
    );
    assert_eq!(
        frames[2]["faces"][0]["smoothed"].as_array().unwrap().len(),
        68
    );
    assert!(out.join("frames/000004.png").is_file());
    assert!(out.join("track.json").is_file());
    let gif = out.join("track.gif");
    assert_eq!(
        hmreg::sequence::frames::Frames::from_gif(&gif)
            .unwrap()
            .len(),
        5
    );
    let res = hmreg()
        .args(["track", "--smooth", "off", "--json"])
        .arg(&gif)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    assert_eq!(doc["frames"].as_array().unwrap().len(), 5);
    assert!(doc["smoothing"].is_null());
    // Bad settings are usage errors naming the flag.
    let res = hmreg()
        .args(["track", "--min-cutoff", "0"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("--min-cutoff"));
}
