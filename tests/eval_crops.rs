//! Evaluation crops: a centre crop of a wide photo loses the points near its sides and `eval`
//! counts them; the top-down `box` crop around the face scores every labelled point.

use std::path::Path;

use candle_core::Tensor;
use hmreg::codec::Decoder;
use hmreg::data::{write_landmarks_txt, ResizeMode};
use hmreg::eval::dataset::EvalSet;
use hmreg::eval::{evaluate, EvalOptions};
use hmreg::models::{Arch, KeypointNet};
use hmreg::run::TrainConfig;
use image::{Rgb, RgbImage};

/// Stride-1 "detector": the maps are the input channels themselves.
struct Identity;

impl KeypointNet for Identity {
    fn forward_t(&self, x: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        Ok(x.clone())
    }
    fn stride(&self) -> usize {
        1
    }
}

/// Wide 120x60 photos whose face (3 points, one per colour channel) touches the left side.
fn wide_faces(root: &Path) {
    for sub in ["images", "landmarks"] {
        std::fs::create_dir_all(root.join("val").join(sub)).unwrap();
    }
    for i in 0..3 {
        let pts = [[3.0 + i as f32, 20.0], [30.0, 25.0], [15.0, 45.0]];
        let img = RgbImage::from_fn(120, 60, |x, y| {
            let mut c = [0u8; 3];
            for (k, p) in pts.iter().enumerate() {
                let d2 = (x as f32 - p[0]).powi(2) + (y as f32 - p[1]).powi(2);
                c[k] = (250.0 * (-d2 / 8.0).exp()) as u8;
            }
            Rgb(c)
        });
        img.save(root.join(format!("val/images/f{i}.png"))).unwrap();
        write_landmarks_txt(&root.join(format!("val/landmarks/f{i}.txt")), &pts).unwrap();
    }
}

#[test]
fn box_crops_score_every_point_that_a_centre_crop_cuts_away() {
    let tmp = tempfile::tempdir().unwrap();
    wide_faces(tmp.path());
    let mut cfg = TrainConfig::default();
    cfg.model.arch = Arch::UnetResnet18;
    cfg.data.points = hmreg::data::PointSelection::All;
    cfg.pipeline.input_size = 64;
    cfg.pipeline.item_size = 0;
    cfg.pipeline.normalize.mean = [0.0; 3];
    cfg.pipeline.normalize.std = [1.0; 3];
    let run = |resize: ResizeMode| {
        let mut c = cfg.clone();
        c.pipeline.resize = resize;
        let c = c.resolve(Some(3)).unwrap();
        let set = EvalSet::open(
            &c,
            tmp.path(),
            "val",
            0.0,
            0,
            Some(2),
            &hmreg::device::test_device(),
        )
        .unwrap();
        let opts = EvalOptions::for_run(&c, c.codec_with(Decoder::Argmax).unwrap());
        evaluate(&Identity, set.batches(false), &opts, &mut |_, _| Ok(()))
            .unwrap()
            .report
    };
    // The centre square of a 120x60 photo is x in [30, 90): every face loses its points at
    // x < 30 (two of three).
    let crop = run(ResizeMode::Crop);
    assert_eq!(crop.count, 3);
    assert_eq!(crop.points_unscored, 3 * 2, "{crop:?}");
    assert_eq!(crop.points_counted, 3);
    let boxed = run(ResizeMode::Box);
    assert_eq!(boxed.points_unscored, 0, "{boxed:?}");
    assert_eq!(boxed.points_counted, 9);
    // And the points found in the box crops are where they were drawn (input pixels).
    assert!(boxed.nmae < 0.03, "{boxed:?}");
}
