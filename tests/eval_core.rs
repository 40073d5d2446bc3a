//! Inference, flip test-time augmentation and evaluation on hand-made models whose outputs are
//! known exactly.

use candle_core::Tensor;
use hmreg::codec::{Codec, Decoder, TargetEncoder};
use hmreg::eval::{self, evaluate, EvalBatch, EvalOptions};
use hmreg::metrics::{MetricAccumulator, MetricConfig};
use hmreg::models::KeypointNet;
use hmreg::Keypoints;

/// Stride-1 "detector": the maps are the input channels themselves, so channel `c` peaks where
/// the image has its brightest value in channel `c`.
struct Identity;

impl KeypointNet for Identity {
    fn forward_t(&self, x: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        Ok(x.clone())
    }
    fn stride(&self) -> usize {
        1
    }
}

/// Ignores its input: fixed peaks, stride 4 (maps of a quarter of the input size).
struct Fixed {
    peaks: Vec<[usize; 2]>,
}

impl KeypointNet for Fixed {
    fn forward_t(&self, x: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        let (n, _, h, w) = x.dims4()?;
        let (mh, mw) = (h / 4, w / 4);
        let l = self.peaks.len();
        let mut v = vec![0f32; n * l * mh * mw];
        for s in 0..n {
            for (c, p) in self.peaks.iter().enumerate() {
                v[((s * l + c) * mh + p[1]) * mw + p[0]] = 1.0;
            }
        }
        Tensor::from_vec(v, (n, l, mh, mw), x.device())
    }
    fn stride(&self) -> usize {
        4
    }
}

const S: usize = 32;

/// A batch of `S x S` images with one bright pixel per channel at the given points.
fn dots(points: &[Vec<[usize; 2]>]) -> Tensor {
    let n = points.len();
    let mut v = vec![0f32; n * 3 * S * S];
    for (i, pts) in points.iter().enumerate() {
        for (c, p) in pts.iter().enumerate() {
            v[((i * 3 + c) * S + p[1]) * S + p[0]] = 5.0;
        }
    }
    Tensor::from_vec(v, (n, 3, S, S), &hmreg::device::test_device()).unwrap()
}

fn kp(pts: &[[usize; 2]]) -> Keypoints {
    Keypoints::new(pts.iter().map(|p| [p[0] as f32, p[1] as f32]).collect())
}

#[test]
fn inference_returns_input_pixels_and_flip_with_identity_permutation_is_exact() {
    let pts = vec![
        vec![[3, 4], [20, 9], [31, 0]],
        vec![[0, 31], [16, 16], [7, 25]],
    ];
    let x = dots(&pts);
    let codec = codec(S);
    let plain = eval::infer(&Identity, &x, &codec, None).unwrap();
    let flipped = eval::infer(&Identity, &x, &codec, Some(&[0, 1, 2])).unwrap();
    for (i, p) in pts.iter().enumerate() {
        assert_eq!(plain.points[i], kp(p));
        // Mirroring is x -> S - 1 - x both ways, so the mirrored prediction lands on the same pixel.
        assert_eq!(flipped.points[i], kp(p));
        assert_eq!(plain.confidence[i], vec![5.0; 3]);
        assert_eq!(flipped.confidence[i], vec![5.0; 3]);
    }
    // Flip-averaged maps of a stride-1 model: exactly the original maps here (mirror of mirror).
    for i in 0..pts.len() {
        let a = plain.sample_maps(i).unwrap();
        assert_eq!(a, flipped.sample_maps(i).unwrap());
        assert_eq!(a.len(), 3 * S * S);
    }
}

#[test]
fn flip_test_swaps_identities_with_the_permutation() {
    // A model that ignores its input predicts the same maps for the mirrored picture; flip TTA
    // must then average point p with the mirror of point perm[p] (stride 4, input pixels).
    let peaks = vec![[1usize, 2usize], [6, 3], [4, 7]];
    let model = Fixed {
        peaks: peaks.clone(),
    };
    let x = Tensor::zeros(
        (1, 3, S, S),
        candle_core::DType::F32,
        &hmreg::device::test_device(),
    )
    .unwrap();
    let perm = [1usize, 0, 2];
    let codec = codec(S / 4);
    let out = eval::infer(&model, &x, &codec, Some(&perm)).unwrap();
    for p in 0..3 {
        let own = [4.0 * peaks[p][0] as f32, 4.0 * peaks[p][1] as f32];
        let other = [
            4.0 * peaks[perm[p]][0] as f32,
            4.0 * peaks[perm[p]][1] as f32,
        ];
        let want = [
            0.5 * (own[0] + (S as f32 - 1.0 - other[0])),
            0.5 * (own[1] + other[1]),
        ];
        assert_eq!(out.points[0].xy[p], want, "point {p}");
    }
    assert_eq!(out.map_size().unwrap(), (S / 4, S / 4));
    assert_eq!(out.sample_maps(0).unwrap().len(), 3 * (S / 4) * (S / 4));
    // A permutation that is not a pairing is refused, not silently used.
    assert!(eval::infer(&model, &x, &codec, Some(&[1, 2, 0])).is_err());
    assert!(eval::infer(&model, &x, &codec, Some(&[0, 1])).is_err());
    // Maps of another size than the codec's are refused, not scaled wrongly.
    assert!(eval::infer(&model, &x, &self::codec(S), None).is_err());
}

#[test]
fn the_point_offset_moves_every_point_after_the_flip_test() {
    // A flip-trained model is mirror-symmetric; the calibration must survive the flip test's
    // average (an offset inside the decoder would cancel there) and move every point by itself.
    let peaks = vec![[1usize, 2usize], [6, 3], [4, 7]];
    let model = Fixed { peaks };
    let x = Tensor::zeros(
        (2, 3, S, S),
        candle_core::DType::F32,
        &hmreg::device::test_device(),
    )
    .unwrap();
    let offset = [0.75f32, -0.25];
    let shifted = codec(S / 4).with_point_offset(offset).unwrap();
    assert_eq!(shifted.point_offset(), offset);
    for flip in [None, Some(&[1usize, 0, 2][..])] {
        let plain = eval::infer(&model, &x, &codec(S / 4), flip).unwrap();
        let moved = eval::infer(&model, &x, &shifted, flip).unwrap();
        for (a, b) in plain.points.iter().zip(&moved.points) {
            for (p, q) in a.xy.iter().zip(&b.xy) {
                assert_eq!([p[0] + offset[0], p[1] + offset[1]], *q, "flip {flip:?}");
            }
        }
        // The maps and confidences are the model's own.
        assert_eq!(plain.confidence, moved.confidence);
        assert_eq!(plain.sample_maps(1).unwrap(), moved.sample_maps(1).unwrap());
    }
    // Not a number of pixels, or past the input: refused with the key's name.
    for bad in [[f32::NAN, 0.0], [0.0, S as f32], [f32::INFINITY, 1.0]] {
        let e = codec(S / 4).with_point_offset(bad).unwrap_err().to_string();
        assert!(e.contains("metrics.point_offset"), "{e}");
    }
}

/// An argmax codec for `S x S` inputs and `map x map` maps.
fn codec(map: usize) -> Codec {
    Codec::new(S, map, TargetEncoder::default(), Decoder::Argmax).unwrap()
}

fn options(keep_first: usize, keep_worst: usize) -> EvalOptions {
    EvalOptions {
        codec: codec(S),
        flip: None,
        metrics: MetricConfig::default(),
        input_size: S,
        mean: [0.5; 3],
        std: [0.25; 3],
        keep_first,
        keep_worst,
    }
}

#[test]
fn evaluation_matches_the_accumulator_and_keeps_the_worst() {
    // Images with dots at `pred`; ground truth differs by known offsets.
    let pred: Vec<Vec<[usize; 2]>> = (0..7)
        .map(|i| vec![[2 + i, 3], [20, 5 + i], [10 + i, 25]])
        .collect();
    let gts: Vec<Keypoints> = pred
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut k = kp(p);
            k.xy[1][0] += i as f32; // sample i is off by i pixels on point 1
            k
        })
        .collect();
    let mut gts_hidden = gts.clone();
    gts_hidden[6].visible[1] = false; // the worst point of the last sample does not count
    let batches = |gts: &[Keypoints]| {
        vec![
            Ok(EvalBatch {
                images: dots(&pred[..4]),
                points: gts[..4].to_vec(),
                targets: Some(pred[..4].iter().map(|p| kp(p)).collect()),
                ids: (0..4).map(|i| format!("s{i}")).collect(),
                target_maps: None,
            }),
            Ok(EvalBatch {
                images: dots(&pred[4..]),
                points: gts[4..].to_vec(),
                targets: None,
                ids: (4..7).map(|i| format!("s{i}")).collect(),
                target_maps: None,
            }),
        ]
    };
    let mut seen = 0;
    let out = evaluate(
        &Identity,
        batches(&gts_hidden),
        &options(2, 3),
        &mut |b, out| {
            // The hook sees the model's own output for each batch.
            assert_eq!(out.dim(0)?, b.points.len());
            seen += b.points.len();
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(seen, 7);
    assert_eq!(out.samples.len(), 7);

    let mut acc = MetricAccumulator::new(MetricConfig::default(), 3);
    let preds: Vec<Keypoints> = pred.iter().map(|p| kp(p)).collect();
    acc.add(&preds, &gts_hidden, S as f32, S as f32);
    acc.add_target_decoded(&preds[..4], &preds[..4], S as f32, S as f32);
    let want = acc.finish();
    assert_eq!(out.report, want);
    assert!(out.report.nmae > 0.0);
    assert_eq!(out.report.nmae_vs_target, Some(0.0));
    assert_eq!(out.samples[0].nme, Some(0.0));

    // Worst kept: s5 then s4 then s3 (s6's large error is on an invisible point).
    let worst: Vec<&str> = out.worst.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(worst, ["s5", "s4", "s3"]);
    let first: Vec<&str> = out.first.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(first, ["s0", "s1"]);
    // Kept pictures are the de-normalised inputs; maps have the model's output size.
    let shown = &out.first[0];
    assert_eq!(shown.image.dimensions(), (S as u32, S as u32));
    assert_eq!((shown.map_w, shown.map_h), (S, S));
    let p = pred[0][0];
    assert_eq!(shown.image.get_pixel(p[0] as u32, p[1] as u32)[0], 255); // (5*0.25+0.5)*255 clamps
    assert_eq!(shown.image.get_pixel(0, 0)[0], 128);
    let grid = eval::show::results_grid(&out.worst, 64);
    assert_eq!(grid.dimensions().0, 3 * (64 + 4) + 4);

    // Same inputs, same numbers.
    let again = evaluate(
        &Identity,
        batches(&gts_hidden),
        &options(0, 0),
        &mut |_, _| Ok(()),
    )
    .unwrap();
    assert_eq!(again.report, out.report);
    assert!(again.first.is_empty() && again.worst.is_empty());
}

#[test]
fn a_failing_batch_is_an_error_not_a_skip() {
    let batches = vec![Err(hmreg::Error::file("x/broken.jpg", "cannot decode"))];
    let err = match evaluate(&Identity, batches, &options(1, 1), &mut |_, _| Ok(())) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a broken batch must fail the evaluation"),
    };
    assert!(err.contains("broken.jpg"), "{err}");
}

#[test]
fn report_text_json_and_output_folder() {
    let pred: Vec<Vec<[usize; 2]>> = (0..3)
        .map(|i| vec![[2 + i, 3], [20, 5], [10, 25 - i]])
        .collect();
    let gts: Vec<Keypoints> = pred
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut k = kp(p);
            k.xy[2][1] += 2.0 * i as f32;
            k
        })
        .collect();
    let batches = vec![Ok(EvalBatch {
        images: dots(&pred),
        points: gts,
        targets: None,
        ids: vec!["a".into(), "b,c".into(), "d".into()],
        target_maps: None,
    })];
    let out = evaluate(&Identity, batches, &options(2, 2), &mut |_, _| Ok(())).unwrap();
    let ctx = eval::report::SummaryContext {
        checkpoint: std::path::Path::new("run/checkpoints/e1"),
        data: std::path::Path::new("data"),
        split: "val",
        decoder: "argmax".into(),
        flip_test: false,
        file_indices: Some(vec![30, 40, 50]),
        whole_layout: None,
    };
    let mut summary = eval::report::summarize(&out, &ctx);
    assert_eq!(summary.worst[0].id, "d");
    assert_eq!(summary.per_point[2].file_index, Some(50));
    assert!(summary.per_point[2].nme > 0.0 && summary.per_point[0].nme == 0.0);
    let dir = tempfile::tempdir().unwrap();
    let outdir = dir.path().join("eval");
    eval::report::write_outputs(&outdir, &out, &mut summary).unwrap();
    for f in ["results.png", "worst.png", "samples.csv", "metrics.json"] {
        assert!(outdir.join(f).is_file(), "{f} missing");
    }
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(outdir.join("metrics.json")).unwrap())
            .unwrap();
    assert_eq!(doc["images"], 3);
    assert_eq!(
        doc["metrics"]["nmae"].as_f64().unwrap() as f32,
        out.report.nmae
    );
    let csv = std::fs::read_to_string(outdir.join("samples.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4);
    assert!(csv.contains("\"b,c\""));
    let text = eval::report::to_text(&summary);
    assert!(text.contains("NMAE") && text.contains("FR@10%") && text.contains("AUC@10%"));
    // Sample i's point 2 is labelled 2i pixels below the prediction: the mean error over the
    // 9 points is (0, -6/9), in the text and the JSON.
    assert_eq!(out.mean_error, [0.0, -6.0 / 9.0]);
    assert!(
        text.contains("mean error x, y (input px)     +0.000, -0.667"),
        "{text}"
    );
    let e = doc["mean_error_px"].as_array().unwrap();
    assert_eq!(e[0].as_f64(), Some(0.0));
    assert!((e[1].as_f64().unwrap() + 6.0 / 9.0).abs() < 1e-12);
}
