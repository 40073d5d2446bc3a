//! Metrics on hand-made cases: NMAE (both variants), NME with each normaliser, FR, AUC, masks.

use hmreg::metrics::{MetricAccumulator, MetricConfig, NmeNorm};
use hmreg::Keypoints;

fn kp(xy: &[[f32; 2]]) -> Keypoints {
    Keypoints::new(xy.to_vec())
}

#[test]
fn nmae_divides_each_axis_by_the_frame_and_ignores_masked_points() {
    let cfg = MetricConfig {
        norm: NmeNorm::BoxDiagonal,
        failure_threshold: 0.1,
    };
    let mut acc = MetricAccumulator::new(cfg, 3);
    let gt = {
        let mut g = kp(&[[10.0, 10.0], [20.0, 40.0], [0.0, 0.0]]);
        g.visible[2] = false; // masked: its huge error must not count
        g
    };
    let pred = kp(&[[12.0, 10.0], [20.0, 37.0], [500.0, 500.0]]);
    acc.add(&[pred], &[gt], 100.0, 50.0);
    let r = acc.finish();
    // |2|/100 + 0/50 + 0/100 + |3|/50 over 4 coordinates.
    let want = (0.02 + 0.0 + 0.0 + 0.06) / 4.0;
    assert!((r.nmae - want).abs() < 1e-7, "{}", r.nmae);
    assert_eq!(r.points_counted, 2);
    assert_eq!(r.count, 1);
    assert!(r.nmae_vs_target.is_none());
    // Box of the visible gt points: 10 x 30, diagonal sqrt(1000).
    let d = 1000f32.sqrt();
    assert!((r.nme - (2.0 + 3.0) / 2.0 / d).abs() < 1e-6);
    assert!((r.per_point[0] - 2.0 / d).abs() < 1e-6);
    assert!((r.per_point[1] - 3.0 / d).abs() < 1e-6);
    assert!(r.per_point[2].is_nan());
}

#[test]
fn nmae_is_scale_free_and_the_target_variant_is_separate() {
    let gt = kp(&[[10.5, 20.25], [3.0, 7.0]]);
    let pred = kp(&[[11.0, 20.0], [2.0, 7.5]]);
    let target = kp(&[[10.0, 20.0], [3.0, 7.0]]);
    let mut a = MetricAccumulator::new(MetricConfig::default(), 2);
    a.add(
        std::slice::from_ref(&pred),
        std::slice::from_ref(&gt),
        64.0,
        32.0,
    );
    a.add_target_decoded(
        std::slice::from_ref(&pred),
        std::slice::from_ref(&target),
        64.0,
        32.0,
    );
    let mut b = MetricAccumulator::new(MetricConfig::default(), 2);
    b.add(
        &[pred.scaled(4.0, 8.0)],
        &[gt.scaled(4.0, 8.0)],
        256.0,
        256.0,
    );
    b.add_target_decoded(
        &[pred.scaled(4.0, 8.0)],
        &[target.scaled(4.0, 8.0)],
        256.0,
        256.0,
    );
    let (ra, rb) = (a.finish(), b.finish());
    assert!((ra.nmae - rb.nmae).abs() < 1e-7);
    let want_t = (1.0 / 64.0 + 0.0 + 1.0 / 64.0 + 0.5 / 32.0) / 4.0;
    assert!((ra.nmae_vs_target.unwrap() - want_t).abs() < 1e-7);
    assert!((rb.nmae_vs_target.unwrap() - want_t).abs() < 1e-7);
}

#[test]
fn nme_pair_normaliser_defaults_by_point_count() {
    assert_eq!(NmeNorm::Auto.resolve(68), NmeNorm::Pair(36, 45));
    assert_eq!(NmeNorm::Auto.resolve(106), NmeNorm::Pair(66, 79));
    assert_eq!(NmeNorm::Auto.resolve(5), NmeNorm::BoxDiagonal);
    assert_eq!("36,45".parse::<NmeNorm>().unwrap(), NmeNorm::Pair(36, 45));
    assert_eq!("box".parse::<NmeNorm>().unwrap(), NmeNorm::BoxDiagonal);
    assert!("36".parse::<NmeNorm>().is_err());

    // 68 points: eye corners 36 and 45 are 50 px apart; every prediction 5 px off -> NME 0.1.
    let mut gt = vec![[0.0f32, 0.0]; 68];
    for (i, p) in gt.iter_mut().enumerate() {
        *p = [i as f32, 100.0];
    }
    gt[36] = [100.0, 100.0];
    gt[45] = [150.0, 100.0];
    let pred: Vec<[f32; 2]> = gt.iter().map(|p| [p[0] + 3.0, p[1] + 4.0]).collect();
    let mut acc = MetricAccumulator::new(MetricConfig::default(), 68);
    acc.add(&[kp(&pred)], &[kp(&gt)], 200.0, 200.0);
    let r = acc.finish();
    assert!((r.nme - 0.1).abs() < 1e-6);
    assert_eq!(r.norm, NmeNorm::Pair(36, 45));
    // An eye corner invisible: no normaliser, the image is left out of NME and counted as such.
    let mut g2 = kp(&gt);
    g2.visible[45] = false;
    acc.add(&[kp(&pred)], &[g2], 200.0, 200.0);
    let r = acc.finish();
    assert_eq!(r.nme_skipped, 1);
    assert_eq!(r.count, 2);
    assert!((r.nme - 0.1).abs() < 1e-6);
}

#[test]
fn failure_rate_and_auc_by_hand() {
    // Four images with NME 0, 0.0625, 0.125 and 0.25 (binary fractions, so no rounding), pair
    // normaliser 1 px long so NME equals the error in px; threshold 0.125.
    let cfg = MetricConfig {
        norm: NmeNorm::Pair(0, 1),
        failure_threshold: 0.125,
    };
    let mut acc = MetricAccumulator::new(cfg, 2);
    for e in [0.0f32, 0.0625, 0.125, 0.25] {
        let gt = kp(&[[0.0, 0.0], [1.0, 0.0]]);
        let pred = kp(&[[e, 0.0], [1.0 + e, 0.0]]);
        acc.add(&[pred], &[gt], 10.0, 10.0);
    }
    let r = acc.finish();
    assert!((r.nme - 0.109375).abs() < 1e-6, "{}", r.nme);
    // Only NME > 0.125 fails: exactly the threshold is not a failure.
    assert!((r.fr - 0.25).abs() < 1e-6, "{}", r.fr);
    // AUC = mean(max(0, 1 - e/0.125)) = (1 + 0.5 + 0 + 0) / 4.
    assert!((r.auc - 0.375).abs() < 1e-6, "{}", r.auc);
    assert_eq!(acc.image_nmes().len(), 4);
    // Serialises to JSON with every field.
    let json = r.to_json().unwrap();
    for key in [
        "nmae",
        "nmae_vs_target",
        "nme",
        "fr",
        "auc",
        "per_point",
        "count",
    ] {
        assert!(
            json.contains(&format!("\"{key}\"")),
            "{key} missing in {json}"
        );
    }
}

#[test]
fn merging_accumulators_equals_one_accumulator() {
    let cfg = MetricConfig::default();
    let gts: Vec<Keypoints> = (0..6)
        .map(|i| kp(&[[i as f32, 2.0], [5.0, i as f32 * 2.0], [9.0, 9.0]]))
        .collect();
    let preds: Vec<Keypoints> = gts.iter().map(|g| g.scaled(1.1, 0.9)).collect();
    let mut all = MetricAccumulator::new(cfg.clone(), 3);
    all.add(&preds, &gts, 16.0, 16.0);
    let mut a = MetricAccumulator::new(cfg.clone(), 3);
    let mut b = MetricAccumulator::new(cfg, 3);
    a.add(&preds[..2], &gts[..2], 16.0, 16.0);
    b.add(&preds[2..], &gts[2..], 16.0, 16.0);
    a.merge(&b);
    let (ra, rall) = (a.finish(), all.finish());
    assert!((ra.nmae - rall.nmae).abs() < 1e-7);
    assert!((ra.nme - rall.nme).abs() < 1e-7);
    assert_eq!(ra.count, 6);
}
