//! Prediction on image files: coordinates come back in the original frame, broken files are
//! reported by name while the others succeed.

use std::path::{Path, PathBuf};

use candle_core::Tensor;
use hmreg::codec::{Codec, Decoder, TargetEncoder};
use hmreg::models::KeypointNet;
use hmreg::predict::{self, FaceSource, PredictOptions, PreparedImage};
use hmreg::BBox;
use image::{Rgb, RgbImage};

/// Stride-1 detector: maps are the input channels (red, green, blue blobs = points 0, 1, 2).
struct Identity;

impl KeypointNet for Identity {
    fn forward_t(&self, x: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        Ok(x.clone())
    }
    fn stride(&self) -> usize {
        1
    }
}

const S: usize = 64;

/// A dark image with a soft red, green and blue blob at the given points.
fn blobs(w: u32, h: u32, pts: &[[f32; 2]; 3]) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let mut c = [10u8; 3];
        for (k, p) in pts.iter().enumerate() {
            let d2 = (x as f32 - p[0]).powi(2) + (y as f32 - p[1]).powi(2);
            let v = 10.0 + 240.0 * (-d2 / (2.0 * 6.0f32.powi(2))).exp();
            c[k] = c[k].max(v as u8);
        }
        Rgb(c)
    })
}

/// A stand-in preparation: pad the image to a square (bottom/right, black), resize to S x S.
fn pad_and_resize(img: &RgbImage, _crop: Option<predict::Crop>) -> hmreg::Result<PreparedImage> {
    let side = img.width().max(img.height());
    let mut sq = RgbImage::new(side, side);
    image::imageops::replace(&mut sq, img, 0, 0);
    let small = image::imageops::resize(
        &sq,
        S as u32,
        S as u32,
        image::imageops::FilterType::Triangle,
    );
    let mut input = vec![0f32; 3 * S * S];
    for (x, y, p) in small.enumerate_pixels() {
        for c in 0..3 {
            input[(c * S + y as usize) * S + x as usize] = p[c] as f32 / 255.0;
        }
    }
    // Pixel i of the input stands for coordinate i: scale by side / S (crate convention).
    let k = side as f32 / S as f32;
    Ok(PreparedImage {
        input,
        to_original: Box::new(move |[x, y]| [x * k, y * k]),
    })
}

fn options(out: Option<PathBuf>) -> PredictOptions {
    PredictOptions {
        codec: Codec::new(S, S, TargetEncoder::default(), Decoder::TopK { k: 9 }).unwrap(),
        flip: None,
        batch_size: 2,
        faces: FaceSource::WholeImage,
        out_dir: out,
        labels: true,
        two_pass: false,
    }
}

#[path = "common/exif.rs"]
mod exif;

fn write(dir: &Path, name: &str, img: &RgbImage) -> PathBuf {
    let p = dir.join(name);
    img.save(&p).unwrap();
    p
}

#[test]
fn points_come_back_in_the_original_frame_and_broken_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let truth_a = [[40.0, 30.0], [150.0, 60.0], [100.0, 100.0]];
    let truth_b = [[20.0, 200.0], [60.0, 40.0], [90.0, 150.0]];
    let a = write(dir.path(), "wide.png", &blobs(200, 120, &truth_a));
    let b = write(dir.path(), "tall.png", &blobs(110, 240, &truth_b));
    let broken = dir.path().join("broken.jpg");
    std::fs::write(&broken, b"\xFF\xD8\xFF\xE0 not really a jpeg").unwrap();
    let missing = dir.path().join("missing.png");
    let paths = vec![a.clone(), broken.clone(), b.clone(), missing.clone()];
    let out = dir.path().join("out");
    let mut ticks = 0;
    let (preds, failures) = predict::predict_files(
        &Identity,
        &paths,
        &pad_and_resize,
        &options(Some(out.clone())),
        &hmreg::device::test_device(),
        &mut || ticks += 1,
    )
    .unwrap();
    assert_eq!(ticks, 4);
    assert_eq!(preds.len(), 2);
    assert_eq!(failures.len(), 2);
    assert_eq!(failures[0].path, broken);
    assert!(
        failures[0].error.contains("broken.jpg"),
        "{}",
        failures[0].error
    );
    assert_eq!(failures[1].path, missing);
    assert!(
        failures[1].error.contains("missing.png"),
        "{}",
        failures[1].error
    );

    for (p, truth, (w, h)) in [
        (&preds[0], truth_a, (200, 120)),
        (&preds[1], truth_b, (110, 240)),
    ] {
        assert_eq!((p.width, p.height), (w, h));
        assert_eq!(p.faces.len(), 1);
        assert_eq!(p.faces[0].bbox, None);
        assert_eq!(p.faces[0].points.len(), 3);
        let k = w.max(h) as f32 / S as f32; // one input pixel in original pixels
        for (q, t) in p.faces[0].points.iter().zip(truth) {
            let err = (q.x - t[0]).hypot(q.y - t[1]);
            assert!(
                err < k,
                "{}: predicted ({}, {}) for {t:?}",
                p.path.display(),
                q.x,
                q.y
            );
            assert!(q.confidence > 0.5);
        }
        let pic = p.annotated.as_ref().expect("annotated picture written");
        assert_eq!(image::open(pic).unwrap().to_rgb8().dimensions(), (w, h));
    }
    let json = serde_json::to_value(&preds).unwrap();
    assert!(json[0]["faces"][0]["points"][2]["confidence"].is_f64());
}

#[test]
fn bbox_parsing_and_checks() {
    assert_eq!(
        predict::parse_bbox("1, 2.5,30,40").unwrap(),
        BBox::from_corners(1.0, 2.5, 31.0, 42.5)
    );
    for bad in ["1,2,3", "1,2,0,4", "a,b,c,d", "1,2,3,-4", "1,2,3,inf"] {
        assert!(predict::parse_bbox(bad).is_err(), "{bad}");
    }
    // Negative coordinates parse (a face past the left or top side).
    assert_eq!(
        predict::parse_bbox("-15,-1,189,189").unwrap().xywh(),
        [-15.0, -1.0, 189.0, 189.0]
    );
    // A box entirely outside the image fails that image only, naming it.
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        dir.path(),
        "a.png",
        &blobs(100, 80, &[[10.0, 10.0], [50.0, 40.0], [90.0, 70.0]]),
    );
    let mut opts = options(None);
    opts.faces = FaceSource::Boxes(vec![BBox::from_xywh([500.0, 500.0, 20.0, 20.0])]);
    let (preds, failures) = predict::predict_files(
        &Identity,
        &[a],
        &pad_and_resize,
        &opts,
        &hmreg::device::test_device(),
        &mut || {},
    )
    .unwrap();
    assert!(preds.is_empty());
    assert!(failures[0].error.contains("a.png") && failures[0].error.contains("outside"));
}

/// The real validation preparation: pad mode (the image is padded to a square and resized to the
/// input), optional pre-downscale, optional face box. Points come back in original pixels.
#[test]
fn real_pipeline_pad_resize_and_box_map_back_to_the_original_frame() {
    use hmreg::data::{PadMode, PipelineConfig, ResizeMode};
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = PipelineConfig {
        input_size: S,
        item_size: 100, // the 200 px item is antialiased down to 100 first
        resize: ResizeMode::Pad,
        ..Default::default()
    };
    cfg.augment.pad = PadMode::Zeros;
    // Wide image: padded above and below; tall image: padded left and right.
    let truth_a = [[40.0, 45.0], [150.0, 60.0], [110.0, 75.0]];
    let truth_b = [[30.0, 200.0], [60.0, 40.0], [85.0, 150.0]];
    let a = write(dir.path(), "wide.png", &blobs(200, 120, &truth_a));
    let b = write(dir.path(), "tall.png", &blobs(110, 240, &truth_b));
    let prepare = predict::validation_preparation(&cfg);
    let (preds, failures) = predict::predict_files(
        &Identity,
        &[a, b],
        &prepare,
        &options(None),
        &hmreg::device::test_device(),
        &mut || {},
    )
    .unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    for (p, truth) in preds.iter().zip([truth_a, truth_b]) {
        let k = p.width.max(p.height) as f32 / S as f32;
        for (q, t) in p.faces[0].points.iter().zip(truth) {
            let err = (q.x - t[0]).hypot(q.y - t[1]);
            assert!(
                err < k,
                "{}: ({}, {}) for {t:?}, err {err}",
                p.path.display(),
                q.x,
                q.y
            );
        }
    }

    // A composed photo: three "faces" (a red, a green and a blue spot at fixed places of the
    // face) pasted at scales 1, 2 and 0.5 on a cluttered background, one reaching past the
    // left side; given their boxes, each box's square is one network input (padded where it
    // leaves the photo) and the points come back in photo pixels.
    // Spot centres in an 80x80 face at scale 1, at least 4 spot widths inside the photo even for
    // the face whose box reaches past its side (a cut spot would pull its centre inwards).
    let layout = [[30.0, 25.0], [55.0, 35.0], [40.0, 62.0]];
    let faces: [([f32; 2], f32); 3] = [
        ([300.0, 190.0], 1.0),
        ([-8.0, 250.0], 2.0),
        ([500.0, 60.0], 0.5),
    ];
    let mut rng = 7u32;
    let mut scene = RgbImage::from_fn(640, 480, |_, _| {
        // Clutter well below the spots' peaks (a linear congruential generator: no new dependency).
        rng = rng.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let v = (rng >> 24) as u8 / 2;
        Rgb([v, v.wrapping_mul(3) / 4, v / 2])
    });
    let mut truths = Vec::new();
    for (origin, scale) in faces {
        let pts: Vec<[f32; 2]> = layout
            .iter()
            .map(|p| [origin[0] + scale * p[0], origin[1] + scale * p[1]])
            .collect();
        for (x, y, px) in scene.enumerate_pixels_mut() {
            for (k, p) in pts.iter().enumerate() {
                let d2 = (x as f32 - p[0]).powi(2) + (y as f32 - p[1]).powi(2);
                let v = (250.0 * (-d2 / (2.0 * (6.0 * scale).powi(2))).exp()) as u8;
                px[k] = px[k].max(v);
            }
        }
        truths.push((
            pts,
            BBox::from_xywh([origin[0], origin[1], 80.0 * scale, 80.0 * scale]),
        ));
    }
    let c = write(dir.path(), "scene.png", &scene);
    let mut opts = options(Some(dir.path().join("annotated")));
    std::fs::create_dir_all(dir.path().join("annotated")).unwrap();
    opts.faces = FaceSource::Boxes(truths.iter().map(|t| t.1).collect());
    let (preds, failures) = predict::predict_files(
        &Identity,
        &[c],
        &prepare,
        &opts,
        &hmreg::device::test_device(),
        &mut || {},
    )
    .unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(preds[0].faces.len(), 3);
    for (f, (truth, b)) in preds[0].faces.iter().zip(&truths) {
        assert_eq!(f.bbox, Some(*b));
        // The tolerance: one input pixel in photo pixels, the grid the identity model's
        // top-k decoding resolves (the box's square spans S input pixels).
        let k = b.width() / S as f32;
        for (q, t) in f.points.iter().zip(truth) {
            let err = (q.x - t[0]).hypot(q.y - t[1]);
            assert!(
                err < k,
                "box {b:?}: ({}, {}) for {t:?}, err {err}",
                q.x,
                q.y
            );
        }
    }
    assert_eq!((preds[0].width, preds[0].height), (640, 480));
    assert!(dir.path().join("annotated/scene.png").is_file());
}

/// A photo stored turned with an EXIF orientation tag (each of 1-8 in a JPEG, 6 in a PNG) gives
/// the points of the upright image, in the upright frame, and says which tag it applied.
#[test]
fn exif_orientation_is_applied_before_prediction() {
    let dir = tempfile::tempdir().unwrap();
    let truth = [[40.0, 150.0], [90.0, 40.0], [70.0, 110.0]];
    let upright = blobs(120, 200, &truth);
    let mut paths = vec![write(dir.path(), "upright.png", &upright)];
    let mut expected = vec![1u8];
    for o in 1..=8u8 {
        let p = dir.path().join(format!("o{o}.jpg"));
        let stored = exif::stored_for(&upright, o);
        std::fs::write(&p, exif::jpeg_with_orientation(&stored, o)).unwrap();
        paths.push(p);
        expected.push(o);
    }
    let png = dir.path().join("o6.png");
    std::fs::write(
        &png,
        exif::png_with_orientation(&exif::stored_for(&upright, 6), 6),
    )
    .unwrap();
    paths.push(png);
    expected.push(6);
    // The tag matters: the stored pixels of a phone portrait are landscape.
    assert_eq!(
        hmreg::data::read_rgb(&paths[6]).unwrap().dimensions(),
        (200, 120)
    );

    let (preds, failures) = predict::predict_files(
        &Identity,
        &paths,
        &pad_and_resize,
        &options(None),
        &hmreg::device::test_device(),
        &mut || {},
    )
    .unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(preds.len(), paths.len());
    let reference = &preds[0].faces[0].points;
    let k = 200.0 / S as f32; // one input pixel in image pixels
    for (p, o) in preds.iter().zip(&expected) {
        let name = p.path.display();
        assert_eq!(p.orientation, *o, "{name}");
        assert_eq!((p.width, p.height), (120, 200), "{name}");
        for (i, q) in p.faces[0].points.iter().enumerate() {
            let r = [reference[i].x, reference[i].y];
            let t = truth[i];
            assert!(
                (q.x - r[0]).hypot(q.y - r[1]) < 1.0,
                "{name}: point {i} at ({}, {}), upright image gives {r:?}",
                q.x,
                q.y
            );
            assert!((q.x - t[0]).hypot(q.y - t[1]) < k, "{name}: point {i}");
        }
    }
    let json = serde_json::to_value(&preds).unwrap();
    assert_eq!(json[6]["orientation"], 6);
    assert_eq!(json[0]["orientation"], 1);
}
