//! Geometry of the training pipeline: points follow their pixels through crop, resize,
//! augmentation and flips; points leaving the frame become invisible.

use hmreg::data::transforms::flip::{self, builtin_permutation};
use hmreg::data::transforms::geometry::{self, Source};
use hmreg::data::transforms::normalize::denormalize_to_rgb;
use hmreg::data::{PipelineConfig, ResizeMode};
use hmreg::{BBox, Keypoints};
use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The face box, which only `resize = "box"` crops use.
const NO_BOX: BBox = BBox::from_corners(0.0, 0.0, 0.0, 0.0);

/// A dark textured image with a bright Gaussian dot (sigma in source pixels) centred at `p`.
fn image_with_dot(w: u32, h: u32, p: [f32; 2], sigma: f32, seed: u64) -> RgbImage {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut img = RgbImage::from_fn(w, h, |_, _| {
        let v: u8 = rng.random_range(10..40);
        Rgb([v, v / 2, v])
    });
    let r = (4.0 * sigma).ceil() as i64;
    for dy in -r..=r {
        for dx in -r..=r {
            let (x, y) = (p[0].round() as i64 + dx, p[1].round() as i64 + dy);
            if x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
                continue;
            }
            let d2 = (x as f32 - p[0]).powi(2) + (y as f32 - p[1]).powi(2);
            let g = (-d2 / (2.0 * sigma * sigma)).exp();
            let px = img.get_pixel_mut(x as u32, y as u32);
            for c in px.0.iter_mut() {
                *c = (*c as f32 + g * 215.0).min(255.0) as u8;
            }
        }
    }
    img
}

/// Centroid of the brightness above the background around the brightest pixel.
fn dot_centre(img: &RgbImage, near: [f32; 2]) -> [f32; 2] {
    let (w, h) = img.dimensions();
    let lum = |x: u32, y: u32| img.get_pixel(x, y).0.iter().map(|&v| v as f32).sum::<f32>();
    // Brightest pixel within 4 px of the expected place (the expectation only guides the search).
    let mut best = (0, 0, f32::MIN);
    for y in 0..h {
        for x in 0..w {
            if (x as f32 - near[0]).abs() <= 4.0
                && (y as f32 - near[1]).abs() <= 4.0
                && lum(x, y) > best.2
            {
                best = (x, y, lum(x, y));
            }
        }
    }
    let (bx, by, peak) = best;
    let mut floor = f32::MAX;
    for y in by.saturating_sub(8)..(by + 9).min(h) {
        for x in bx.saturating_sub(8)..(bx + 9).min(w) {
            floor = floor.min(lum(x, y));
        }
    }
    let thresh = floor + 0.3 * (peak - floor);
    let (mut sx, mut sy, mut sw) = (0.0, 0.0, 0.0);
    for y in by.saturating_sub(6)..(by + 7).min(h) {
        for x in bx.saturating_sub(6)..(bx + 7).min(w) {
            let v = (lum(x, y) - thresh).max(0.0);
            sx += v * x as f32;
            sy += v * y as f32;
            sw += v;
        }
    }
    [sx / sw, sy / sw]
}

fn check_dots_land(src_w: u32, src_h: u32, sigma: f32, cfg: &PipelineConfig, cases: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(src_w as u64 * 7 + src_h as u64);
    let mut checked = 0;
    let mut worst = 0.0f32;
    let s = cfg.input_size;
    for case in 0..cases {
        // Keep the dot away from the border so its blob is whole; anywhere else is fair game.
        let p = [
            rng.random_range(0.2..0.8) * src_w as f32,
            rng.random_range(0.2..0.8) * src_h as f32,
        ];
        let img = image_with_dot(src_w, src_h, p, sigma, case as u64);
        let (ww, wh) = geometry::item_working_size(src_w, src_h, cfg, NO_BOX);
        let work = hmreg::data::transforms::warp::downscale(&img, ww, wh);
        let src = Source {
            image: &work,
            original: (src_w, src_h),
        };
        let kp = Keypoints::new(vec![p]);
        let mut out = vec![0.0; 3 * s * s];
        let prep = geometry::prepare(&src, &kp, NO_BOX, cfg, true, Some(&[0]), &mut rng, &mut out);
        let q = prep.points.xy[0];
        let margin = 6.0;
        if !prep.points.visible[0]
            || q[0] < margin
            || q[1] < margin
            || q[0] > s as f32 - margin
            || q[1] > s as f32 - margin
        {
            continue;
        }
        let pic = denormalize_to_rgb(&out, s, s, &cfg.normalize);
        let c = dot_centre(&pic, q);
        let err = ((c[0] - q[0]).powi(2) + (c[1] - q[1]).powi(2)).sqrt();
        worst = worst.max(err);
        assert!(
            err < 1.0,
            "case {case}: dot at {c:?}, transformed point at {q:?} (draw {:?}, flipped {})",
            prep.plan.draw,
            prep.plan.flipped
        );
        checked += 1;
    }
    assert!(
        checked >= cases / 2,
        "only {checked} of {cases} dots stayed in the frame"
    );
    eprintln!("{src_w}x{src_h}: {checked} dots, worst distance {worst:.3} px");
}

fn random_flip_cfg(size: usize) -> PipelineConfig {
    let mut cfg = PipelineConfig {
        input_size: size,
        ..PipelineConfig::default()
    };
    cfg.flip.p = 0.5;
    // Stronger than the recipe so that every component visibly acts.
    cfg.augment.rotate.max_deg = 25.0;
    cfg.augment.zoom.max = 1.4;
    cfg.augment.warp.magnitude = 0.3;
    cfg
}

#[test]
fn bright_dots_land_on_their_transformed_points() {
    check_dots_land(220, 180, 1.5, &random_flip_cfg(128), 30);
    // Large source: the antialiased pre-downscale must be accounted for exactly.
    check_dots_land(1200, 900, 4.0, &random_flip_cfg(128), 15);
    // Pad and squish resizes.
    let mut pad = random_flip_cfg(96);
    pad.resize = ResizeMode::Pad;
    check_dots_land(200, 120, 1.5, &pad, 15);
    let mut squish = random_flip_cfg(96);
    squish.resize = ResizeMode::Squish;
    check_dots_land(160, 240, 1.5, &squish, 15);
}

#[test]
fn recipe_defaults_keep_dots_on_points() {
    check_dots_land(300, 260, 1.5, &PipelineConfig::default(), 20);
}

#[test]
fn flip_twice_is_identity_and_swaps_named_pairs() {
    let perm = builtin_permutation(68).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let img = RgbImage::from_fn(40, 30, |_, _| {
        Rgb([rng.random(), rng.random(), rng.random()])
    });
    let pts: Vec<[f32; 2]> = (0..68)
        .map(|_| [rng.random_range(0.0..40.0), rng.random_range(0.0..30.0)])
        .collect();
    let mut kp = Keypoints::new(pts);
    kp.visible[3] = false;
    let (img1, kp1) = flip::flip_horizontal(&img, &kp, &perm);
    let (img2, kp2) = flip::flip_horizontal(&img1, &kp1, &perm);
    assert_eq!(img2, img);
    for (a, b) in kp2.xy.iter().zip(kp.xy.iter()) {
        assert!((a[0] - b[0]).abs() < 1e-4 && a[1] == b[1]);
    }
    assert_eq!(kp2.visible, kp.visible);
    // Named pairs: outer eye corners 36 <-> 45, jaw 0 <-> 16, mouth corners 48 <-> 54; nose tip stays.
    for (a, b) in [(36, 45), (0, 16), (48, 54), (3, 13)] {
        assert_eq!(kp1.xy[b], [39.0 - kp.xy[a][0], kp.xy[a][1]]);
        assert_eq!(kp1.xy[a], [39.0 - kp.xy[b][0], kp.xy[b][1]]);
        assert_eq!(kp1.visible[b], kp.visible[a]);
    }
    assert_eq!(kp1.xy[30], [39.0 - kp.xy[30][0], kp.xy[30][1]]);
    // The mirrored pixel under a mirrored point is the original pixel under the original point.
    assert_eq!(img1.get_pixel(39 - 5, 7), img.get_pixel(5, 7));
}

#[test]
fn pipeline_flip_mirrors_the_image_and_swaps_points() {
    let perm = flip::flip_permutation_for_indices(68, Some(&[8, 30, 36, 45, 57]), None).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let img = RgbImage::from_fn(90, 70, |_, _| {
        Rgb([rng.random(), rng.random(), rng.random()])
    });
    let kp = Keypoints::new(vec![
        [45.0, 60.0],
        [44.0, 35.0],
        [30.0, 25.0],
        [60.0, 26.0],
        [45.0, 50.0],
    ]);
    let src = Source {
        image: &img,
        original: (90, 70),
    };
    let mut cfg = PipelineConfig {
        input_size: 64,
        ..PipelineConfig::default()
    };
    let s = 64;
    let (mut a, mut b) = (vec![0.0; 3 * s * s], vec![0.0; 3 * s * s]);
    let pa = geometry::prepare(
        &src,
        &kp,
        NO_BOX,
        &cfg,
        true,
        Some(&perm),
        &mut ChaCha8Rng::seed_from_u64(1),
        &mut a,
    );
    cfg.flip.p = 1.0;
    let pb = geometry::prepare(
        &src,
        &kp,
        NO_BOX,
        &cfg,
        true,
        Some(&perm),
        &mut ChaCha8Rng::seed_from_u64(1),
        &mut b,
    );
    assert!(!pa.plan.flipped && pb.plan.flipped);
    for c in 0..3 {
        for y in 0..s {
            for x in 0..s {
                let (va, vb) = (a[c * s * s + y * s + x], b[c * s * s + y * s + (s - 1 - x)]);
                assert!(
                    (va - vb).abs() < 1e-4,
                    "pixel ({x},{y}) channel {c}: {va} vs {vb}"
                );
            }
        }
    }
    // Selected points: 36 and 45 (positions 2 and 3) swap; 8, 30, 57 stay.
    for (i, j) in [(0, 0), (1, 1), (2, 3), (3, 2), (4, 4)] {
        let (p, q) = (pa.points.xy[i], pb.points.xy[j]);
        assert!((q[0] - (s as f32 - 1.0 - p[0])).abs() < 1e-3 && (q[1] - p[1]).abs() < 1e-3);
    }
}

#[test]
fn points_leaving_the_frame_are_invisible_not_clamped() {
    let cfg = PipelineConfig {
        input_size: 32,
        ..PipelineConfig::default()
    };
    let img = RgbImage::new(300, 100);
    let src = Source {
        image: &img,
        original: (300, 100),
    };
    // Validation centre crop keeps x in [100, 200).
    let kp = Keypoints::new(vec![
        [20.0, 50.0],
        [150.0, 50.0],
        [280.0, 10.0],
        [199.0, 99.0],
    ]);
    let mut out = vec![0.0; 3 * 32 * 32];
    let p = geometry::prepare(
        &src,
        &kp,
        NO_BOX,
        &cfg,
        false,
        None,
        &mut ChaCha8Rng::seed_from_u64(0),
        &mut out,
    );
    assert_eq!(p.points.visible, vec![false, true, false, true]);
    assert!(
        (p.points.xy[0][0] - (20.0 - 100.0) * 0.32).abs() < 1e-3,
        "{:?}",
        p.points.xy[0]
    );
    assert!((p.points.xy[2][0] - (280.0 - 100.0) * 0.32).abs() < 1e-3);
}

#[test]
fn inference_preparation_matches_validation_and_inverts() {
    let cfg = PipelineConfig {
        input_size: 48,
        ..PipelineConfig::default()
    };
    let img = image_with_dot(120, 80, [70.0, 30.0], 1.5, 3);
    let (data, m) = geometry::prepare_for_inference(&img, None, &cfg);
    let src = Source {
        image: &img,
        original: (120, 80),
    };
    let mut out = vec![0.0; 3 * 48 * 48];
    let kp = Keypoints::new(vec![[70.0, 30.0]]);
    let p = geometry::prepare(
        &src,
        &kp,
        NO_BOX,
        &cfg,
        false,
        None,
        &mut ChaCha8Rng::seed_from_u64(0),
        &mut out,
    );
    assert_eq!(data, out);
    let back = m.inverse().unwrap().apply(p.points.xy[0]).unwrap();
    assert!((back[0] - 70.0).abs() < 1e-3 && (back[1] - 30.0).abs() < 1e-3);
    // A bounding box picks the square around it.
    let (_, mb) = geometry::prepare_for_inference(
        &img,
        Some(BBox::from_corners(60.0, 20.0, 80.0, 40.0)),
        &cfg,
    );
    let c = mb.apply([70.0, 30.0]).unwrap();
    assert!(
        (c[0] - 24.0).abs() < 1e-3 && (c[1] - 24.0).abs() < 1e-3,
        "{c:?}"
    );
}

/// The face-alignment recipes' augmentation: rotation up to 30 degrees, scale 0.75-1.25,
/// translation, flips and blur, every one applied: dots stay on their points.
#[test]
fn face_alignment_augmentations_keep_dots_on_points() {
    let mut cfg = random_flip_cfg(128);
    let a = &mut cfg.augment;
    a.rotate.max_deg = 30.0;
    a.rotate.p = 1.0;
    a.zoom.min = 0.75;
    a.zoom.max = 1.25;
    a.zoom.p = 1.0;
    a.warp.enabled = false;
    a.translate.enabled = true;
    a.translate.p = 1.0;
    a.blur.enabled = true;
    a.blur.p = 1.0;
    check_dots_land(220, 180, 1.5, &cfg, 30);
}

#[test]
fn occlusion_erases_one_rectangle_of_the_input_and_moves_no_point() {
    let img = image_with_dot(160, 160, [80.0, 80.0], 2.0, 1);
    let src = Source {
        image: &img,
        original: (160, 160),
    };
    let kp = Keypoints::new(vec![[80.0, 80.0], [20.0, 140.0]]);
    let mut plain = PipelineConfig {
        input_size: 64,
        item_size: 0,
        ..PipelineConfig::default()
    };
    plain.augment.enabled = false;
    let mut occluded = plain.clone();
    occluded.augment.enabled = true;
    for c in [
        &mut occluded.augment.rotate.enabled,
        &mut occluded.augment.zoom.enabled,
        &mut occluded.augment.warp.enabled,
        &mut occluded.augment.brightness.enabled,
        &mut occluded.augment.contrast.enabled,
    ] {
        *c = false;
    }
    occluded.augment.occlusion.enabled = true;
    occluded.augment.occlusion.p = 1.0;
    let n = 3 * 64 * 64;
    let (mut a, mut b) = (vec![0.0; n], vec![0.0; n]);
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let pa = geometry::prepare(&src, &kp, NO_BOX, &plain, true, None, &mut rng, &mut a);
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let pb = geometry::prepare(&src, &kp, NO_BOX, &occluded, true, None, &mut rng, &mut b);
    assert_eq!(pa.points, pb.points);
    let [x, y, w, h] = pb.plan.draw.pixels.occlusion.expect("p = 1");
    let area = w * h;
    assert!((0.02 - 1e-6..=0.15 + 1e-6).contains(&area), "area {area}");
    let px = |f: f32| ((f * 64.0).round() as usize).min(64);
    let (x0, y0, x1, y1) = (px(x), px(y), px(x + w), px(y + h));
    let mut erased = 0;
    for c in 0..3 {
        for yy in 0..64 {
            for xx in 0..64 {
                let i = c * 64 * 64 + yy * 64 + xx;
                if (x0..x1).contains(&xx) && (y0..y1).contains(&yy) {
                    assert_eq!(b[i], 0.0);
                    erased += 1;
                } else {
                    assert_eq!(
                        a[i], b[i],
                        "pixel ({xx}, {yy}) outside the rectangle changed"
                    );
                }
            }
        }
    }
    assert!(erased > 0);
}

#[test]
fn blur_keeps_flat_images_flat_and_a_dot_in_place() {
    use hmreg::data::transforms::pixel_augment::PixelDraw;
    let s = 32;
    let blur = PixelDraw {
        blur_sigma: 1.5,
        occlusion: None,
    };
    let mut flat = vec![0.7f32; 3 * s * s];
    blur.apply_chw(&mut flat, s);
    assert!(flat.iter().all(|v| (v - 0.7).abs() < 1e-5));
    let mut dot = vec![0f32; 3 * s * s];
    dot[10 * s + 20] = 1.0;
    blur.apply_chw(&mut dot, s);
    let plane = &dot[..s * s];
    let total: f32 = plane.iter().sum();
    let cx: f32 = plane
        .iter()
        .enumerate()
        .map(|(i, v)| (i % s) as f32 * v)
        .sum::<f32>()
        / total;
    let cy: f32 = plane
        .iter()
        .enumerate()
        .map(|(i, v)| (i / s) as f32 * v)
        .sum::<f32>()
        / total;
    assert!((total - 1.0).abs() < 1e-4 && (cx - 20.0).abs() < 1e-3 && (cy - 10.0).abs() < 1e-3);
    assert!(plane[10 * s + 20] < 0.2, "the dot spread");
}

#[test]
fn bad_augmentation_settings_are_refused() {
    let mut cfg = PipelineConfig::default();
    cfg.augment.occlusion.min_area = 0.3;
    cfg.augment.occlusion.max_area = 0.2;
    assert!(cfg.validate().is_err());
    let mut cfg = PipelineConfig::default();
    cfg.augment.blur.max_sigma = -1.0;
    assert!(cfg.validate().is_err());
    let mut cfg = PipelineConfig::default();
    cfg.augment.translate.max = 0.8;
    assert!(cfg.validate().is_err());
}
