//! The randomized-rounding experiment: Monte-Carlo figures and the quantization part's expected
//! errors on synthetic points (uniform fractional parts give known mean errors).

use hmreg::experiment::rounding::{
    montecarlo, quantization, MonteCarloConfig, Pair, QuantizationConfig,
};
use hmreg::metrics::{MetricConfig, NmeNorm};
use hmreg::Keypoints;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn montecarlo_reproduces_the_writeup_within_what_2000_draws_allow() {
    let r = montecarlo(&MonteCarloConfig {
        draws: 2000,
        seed: 7,
        spread_draws: vec![10, 1000],
        trials: 200,
    })
    .unwrap();
    // The axis reading of the write-up: x scales by 256/2500, y by 384/1500.
    assert!((r.exact[0] - 16.6912).abs() < 1e-9 && (r.exact[1] - 343.552).abs() < 1e-9);
    let rr = &r.means[0];
    assert_eq!(rr.encoder, "randomized-rounding");
    for a in 0..2 {
        // Unbiased: within 5 standard errors (derived from the Bernoulli variance).
        assert!(rr.error[a].abs() <= 5.0 * rr.standard_error[a], "{rr:?}");
        // The write-up's own mean is consistent with the same standard error.
        assert!(r.writeup_z[a].abs() < 5.0);
    }
    // floor and round keep their bias exactly, whatever the number of draws.
    let (floor, round) = (&r.means[1], &r.means[2]);
    assert_eq!(floor.mean, [16.0, 343.0]);
    assert_eq!(round.mean, [17.0, 344.0]);
    assert!((floor.error[0] + 0.6912).abs() < 1e-6 && (floor.error[1] + 0.552).abs() < 1e-6);
    // Spread: RMS of the mean ~ sqrt(e(1-e)/N). With 200 trials the RMS estimate has a relative
    // standard error of about 1/sqrt(2 * 200) = 5 %, so 5 of those is 25 %.
    for s in &r.spread {
        for a in 0..2 {
            let ratio = s.rms_error[a] / s.predicted[a];
            assert!((ratio - 1.0).abs() < 0.25, "{s:?}");
        }
    }
    // And it falls like 1/sqrt(N): 100x the draws, 10x smaller (within the same tolerance).
    let fall = r.spread[0].rms_error[0] / r.spread[1].rms_error[0];
    assert!((fall / 10.0 - 1.0).abs() < 0.5, "{fall}");
}

#[test]
fn quantization_errors_match_their_expectations_on_uniform_points() {
    // Points with uniformly distributed fractional parts on every map (input 64, maps 16 and 8),
    // in the middle half of the input.
    let input = 64usize;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let samples: Vec<Keypoints> = (0..60)
        .map(|_| {
            Keypoints::new(
                (0..20)
                    .map(|_| {
                        [
                            16.0 + rng.random::<f32>() * 31.9,
                            16.0 + rng.random::<f32>() * 31.9,
                        ]
                    })
                    .collect(),
            )
        })
        .collect();
    let cfg = QuantizationConfig {
        input,
        sizes: vec![16, 8],
        draws: 4,
        sigma: 1.0,
        k: 9,
        seed: 1,
        metric: MetricConfig {
            norm: NmeNorm::BoxDiagonal,
            failure_threshold: 0.1,
        },
    };
    let r = quantization(&samples, &cfg, &|| {}).unwrap();
    assert_eq!(r.images, 60);
    let get = |p: Pair, m: usize| r.rows.iter().find(|q| q.pair == p && q.size == m).unwrap();
    // 2400 coordinates: the mean absolute error of U(0,1) has std sqrt(1/12) / sqrt(2400) in map
    // pixels ~ 0.006; 5 of those ~ 0.03 map px. NMAE = map-px error / map size.
    let tol = 5.0 * (1.0f64 / 12.0).sqrt() / 2400f64.sqrt();
    for m in [16usize, 8] {
        let nmae_px = |p: Pair| get(p, m).nmae as f64 * m as f64;
        // floor: mean |e| = 1/2; Gaussian+argmax lands on the same truncated pixel.
        assert!((nmae_px(Pair::FloorArgmax) - 0.5).abs() < tol, "floor {m}");
        assert_eq!(
            get(Pair::GaussianArgmax, m).nmae,
            get(Pair::FloorArgmax, m).nmae
        );
        // round: mean |e - round(e)| = 1/4.
        assert!((nmae_px(Pair::RoundArgmax) - 0.25).abs() < tol, "round {m}");
        // one randomized draw: E|error| = 2 e (1 - e), mean over e = 1/3.
        assert!(
            (nmae_px(Pair::RrArgmax) - 1.0 / 3.0).abs() < 2.0 * tol,
            "rr {m}"
        );
        // An unquantised Gaussian refined by DARK is nearly exact away from the border (on the
        // 16 map every point is at least 4 sigma inside; on the 8 map the clipped window and the
        // two-pixel margin DARK needs spoil it).
        if m == 16 {
            assert!(
                nmae_px(Pair::SubpixelGaussianDark) < 0.01,
                "dark {m}: {}",
                nmae_px(Pair::SubpixelGaussianDark)
            );
        }
        // DARK on the integer-centred Gaussian recovers the truncated pixel: floor's error.
        assert!(
            (nmae_px(Pair::GaussianDark) - 0.5).abs() < tol,
            "gaussian dark {m}"
        );
        // Every point is on the map: nothing masked.
        assert!(r.rows.iter().all(|q| q.masked == 0));
    }
    // Quantization error grows as the map shrinks (in input pixels).
    assert!(
        get(Pair::FloorArgmax, 8).mean_error_px > 1.8 * get(Pair::FloorArgmax, 16).mean_error_px
    );
    // Deterministic for a seed.
    let again = quantization(&samples, &cfg, &|| {}).unwrap();
    for (a, b) in r.rows.iter().zip(&again.rows) {
        assert_eq!(a.nmae, b.nmae);
    }
}

#[test]
fn quantization_masks_points_off_the_map() {
    let samples = vec![Keypoints::new(vec![[10.0, 10.0], [-3.0, 5.0], [64.0, 1.0]])];
    let cfg = QuantizationConfig {
        input: 64,
        sizes: vec![16],
        draws: 1,
        ..QuantizationConfig::default()
    };
    let r = quantization(&samples, &cfg, &|| {}).unwrap();
    for q in &r.rows {
        assert_eq!(q.masked, 2, "{:?}", q.pair);
        assert_eq!(q.points, 1);
    }
    assert!(quantization(&[], &cfg, &|| {}).is_err());
}
