//! Encoders: Gaussian maps against their definition, binary encoders, masks, batching, seeds.

use hmreg::codec::{encode, encode_batch, gaussian, rounding, Decoder, TargetEncoder};
use hmreg::Keypoints;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn encode_one(enc: &TargetEncoder, p: [f32; 2], w: usize, h: usize) -> (Vec<f32>, bool) {
    let mut out = vec![f32::NAN; w * h];
    let mask = encode(enc, &Keypoints::new(vec![p]), w, h, &mut rng(0), &mut out);
    (out, mask[0])
}

/// Pixel-for-pixel check against the written definition (square window of radius 3 sigma).
fn check_definition(map: &[f32], w: usize, h: usize, c: [f32; 2], sigma: f32) {
    let r = 3.0 * sigma;
    for j in 0..h {
        for i in 0..w {
            let (dx, dy) = (i as f32 - c[0], j as f32 - c[1]);
            let want = if dx.abs() <= r && dy.abs() <= r {
                (-(dx * dx + dy * dy) / (2.0 * sigma * sigma)).exp()
            } else {
                0.0
            };
            let got = map[j * w + i];
            assert!(
                (got - want).abs() <= 1e-6 && (want == 0.0) == (got == 0.0),
                "pixel ({i}, {j}) of {w}x{h}, centre {c:?}, sigma {sigma}: got {got}, want {want}"
            );
        }
    }
}

proptest! {
    #[test]
    fn gaussian_matches_definition(
        w in 1usize..40, h in 1usize..40, fx in 0f32..1.0, fy in 0f32..1.0,
        sigma in 0.3f32..6.0, subpixel in any::<bool>(),
    ) {
        let p = [fx * w as f32, fy * h as f32];
        prop_assume!(p[0] < w as f32 && p[1] < h as f32);
        let enc = TargetEncoder::Gaussian { sigma, subpixel };
        let (map, mask) = encode_one(&enc, p, w, h);
        prop_assert!(mask);
        let c = if subpixel { p } else { [p[0].trunc(), p[1].trunc()] };
        check_definition(&map, w, h, c, sigma);
        if !subpixel {
            // Peak 1 exactly at the truncated pixel.
            prop_assert_eq!(map[c[1] as usize * w + c[0] as usize], 1.0);
        }
    }

    #[test]
    fn rounded_gaussian_is_the_definition_at_the_nearest_pixel(
        w in 1usize..40, h in 1usize..40, fx in 0f32..1.0, fy in 0f32..1.0, sigma in 0.3f32..6.0,
    ) {
        let p = [fx * w as f32, fy * h as f32];
        prop_assume!(p[0] < w as f32 && p[1] < h as f32);
        let enc = TargetEncoder::GaussianRound { sigma };
        let (map, mask) = encode_one(&enc, p, w, h);
        prop_assert!(mask);
        prop_assert!(!enc.is_binary());
        // Rounded like the one-hot `round` encoder: clamped into the map at the far edge.
        let c = rounding::round(p, w, h);
        check_definition(&map, w, h, c, sigma);
        let (xy, _) = hmreg::codec::decode_one(&map, w, h, &Decoder::Argmax);
        prop_assert_eq!(xy, c);
    }

    #[test]
    fn argmax_of_gaussian_is_the_encoding_centre(
        w in 2usize..48, h in 2usize..48, fx in 0f32..1.0, fy in 0f32..1.0, sigma in 0.5f32..8.0,
    ) {
        let p = [fx * w as f32, fy * h as f32];
        prop_assume!(p[0] < w as f32 && p[1] < h as f32);
        let enc = TargetEncoder::Gaussian { sigma, subpixel: false };
        let (map, _) = encode_one(&enc, p, w, h);
        let (xy, conf) = hmreg::codec::decode_one(&map, w, h, &Decoder::Argmax);
        prop_assert_eq!(xy, [p[0].trunc(), p[1].trunc()]);
        prop_assert_eq!(conf, 1.0);
    }

    #[test]
    fn binary_encoders_set_one_pixel(
        w in 1usize..40, h in 1usize..40, fx in 0f32..1.0, fy in 0f32..1.0, seed in any::<u64>(),
    ) {
        let p = [fx * w as f32, fy * h as f32];
        prop_assume!(p[0] < w as f32 && p[1] < h as f32);
        for enc in [TargetEncoder::RandomizedRounding, TargetEncoder::Floor, TargetEncoder::Round] {
            let mut out = vec![0.5; w * h];
            let mask = encode(&enc, &Keypoints::new(vec![p]), w, h, &mut rng(seed), &mut out);
            prop_assert!(mask[0]);
            let ones: Vec<usize> = (0..w * h).filter(|&i| out[i] == 1.0).collect();
            prop_assert_eq!(ones.len(), 1);
            prop_assert_eq!(out.iter().filter(|&&v| v == 0.0).count(), w * h - 1);
            let (x, y) = ((ones[0] % w) as f32, (ones[0] / w) as f32);
            let clampx = |v: f32| v.min(w as f32 - 1.0);
            let clampy = |v: f32| v.min(h as f32 - 1.0);
            match enc {
                TargetEncoder::Floor => prop_assert_eq!([x, y], [p[0].floor(), p[1].floor()]),
                TargetEncoder::Round => prop_assert_eq!(
                    [x, y],
                    [clampx((p[0] + 0.5).floor()), clampy((p[1] + 0.5).floor())]
                ),
                _ => {
                    prop_assert!(x == p[0].floor() || x == clampx(p[0].floor() + 1.0));
                    prop_assert!(y == p[1].floor() || y == clampy(p[1].floor() + 1.0));
                }
            }
        }
    }
}

#[test]
fn gaussian_window_and_border_clipping_by_hand() {
    // sigma 2 -> radius 6: from centre (1, 2) pixels x <= 7 are inside, x = 8 is not.
    let enc = TargetEncoder::Gaussian {
        sigma: 2.0,
        subpixel: false,
    };
    let (w, h) = (16, 16);
    let (map, mask) = encode_one(&enc, [1.9, 2.2], w, h);
    assert!(mask);
    assert_eq!(map[2 * w + 1], 1.0);
    assert!((map[2 * w + 7] - (-36f32 / 8.0).exp()).abs() < 1e-7);
    assert_eq!(map[2 * w + 8], 0.0);
    assert!((map[8 * w + 1] - (-36f32 / 8.0).exp()).abs() < 1e-7);
    assert_eq!(map[9 * w + 1], 0.0);
    // Clipped on the left and top: column 0 and row 0 exist, nothing wraps to the other side.
    assert!((map[0] - (-(1.0 + 4.0) / 8f32).exp()).abs() < 1e-7);
    assert_eq!(map[15], 0.0);
    assert_eq!(map[15 * w], 0.0);
    let nonzero = map.iter().filter(|&&v| v > 0.0).count();
    assert_eq!(nonzero, 8 * 9); // x in 0..=7, y in 0..=8
}

#[test]
fn points_off_the_map_or_invisible_give_empty_maps_and_a_false_mask() {
    let (w, h) = (8, 6);
    let mut kp = Keypoints::new(vec![
        [3.5, 2.5],  // on the map
        [-0.1, 2.0], // left of it (its Gaussian window would still reach the map)
        [8.0, 1.0],  // x == w is off the map
        [2.0, 6.0],  // y == h is off the map
        [f32::NAN, 1.0],
        [4.0, 4.0], // on the map but invisible
        [7.99, 5.99],
    ]);
    kp.visible[5] = false;
    let want = [true, false, false, false, false, false, true];
    for enc in [
        TargetEncoder::default(),
        TargetEncoder::Gaussian {
            sigma: 1.0,
            subpixel: true,
        },
        TargetEncoder::RandomizedRounding,
        TargetEncoder::Floor,
        TargetEncoder::Round,
    ] {
        let mut out = vec![7.0; kp.len() * w * h];
        let mask = encode(&enc, &kp, w, h, &mut rng(3), &mut out);
        assert_eq!(mask, want, "{enc}");
        for (i, m) in out.chunks(w * h).enumerate() {
            let empty = m.iter().all(|&v| v == 0.0);
            assert_eq!(empty, !want[i], "{enc}: map {i}");
        }
    }
}

#[test]
fn randomized_rounding_mean_converges_to_the_point() {
    // The mean of N draws has standard error sqrt(e (1 - e) / N) per axis (Bernoulli on the
    // fractional part e); it must lie within 5 standard errors of the float point.
    let (w, h) = (64, 64);
    let n = 4000;
    let mut r = rng(11);
    for p in [[10.3f32, 20.75], [0.05, 62.5], [31.999, 7.0], [5.5, 5.5]] {
        let kp = Keypoints::new(vec![p]);
        let mut out = vec![0.0; w * h];
        let mut sum = [0f64; 2];
        for _ in 0..n {
            encode(
                &TargetEncoder::RandomizedRounding,
                &kp,
                w,
                h,
                &mut r,
                &mut out,
            );
            let i = out.iter().position(|&v| v == 1.0).unwrap();
            sum[0] += (i % w) as f64;
            sum[1] += (i / w) as f64;
        }
        for a in 0..2 {
            let mean = sum[a] / n as f64;
            let e = (p[a] - p[a].floor()) as f64;
            let se = (e * (1.0 - e) / n as f64).sqrt();
            let err = (mean - p[a] as f64).abs();
            if se == 0.0 {
                assert!(err < 1e-9, "{p:?} axis {a}: exact point, mean {mean}");
            } else {
                assert!(
                    err <= 5.0 * se,
                    "{p:?} axis {a}: mean {mean}, {err} > 5 x {se}"
                );
            }
        }
    }
    // Floor does not converge: its bias is the fractional part, far more than 5 standard errors.
    let (f, _) = encode_one(&TargetEncoder::Floor, [10.3, 20.75], w, h);
    assert_eq!(f[20 * w + 10], 1.0);
}

#[test]
fn expected_map_is_the_mean_of_draws() {
    let (w, h) = (6, 5);
    let p = [2.25f32, 3.6];
    let mut exp = vec![0.0; w * h];
    rounding::expected_map(p, w, h, &mut exp);
    assert!((exp.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    assert!((exp[3 * w + 2] - 0.75 * 0.4).abs() < 1e-6);
    assert!((exp[3 * w + 3] - 0.25 * 0.4).abs() < 1e-6);
    assert!((exp[4 * w + 2] - 0.75 * 0.6).abs() < 1e-6);
    assert!((exp[4 * w + 3] - 0.25 * 0.6).abs() < 1e-6);
    // The expected map's centre of mass is the point itself.
    let cx: f32 = (0..w * h).map(|i| exp[i] * (i % w) as f32).sum();
    let cy: f32 = (0..w * h).map(|i| exp[i] * (i / w) as f32).sum();
    assert!((cx - p[0]).abs() < 1e-5 && (cy - p[1]).abs() < 1e-5);
}

#[test]
fn batch_equals_per_sample_and_seeds_reproduce() {
    let (w, h) = (16, 12);
    let kps: Vec<Keypoints> = (0..5)
        .map(|s| {
            Keypoints::new(
                (0..7)
                    .map(|i| {
                        [
                            (s * 3 + i) as f32 * 0.77 % 16.0,
                            (i * 5 + s) as f32 * 0.61 % 13.0,
                        ]
                    })
                    .collect(),
            )
        })
        .collect();
    for enc in [TargetEncoder::RandomizedRounding, TargetEncoder::default()] {
        let mut batch = vec![0.0; 5 * 7 * w * h];
        let mb = encode_batch(&enc, &kps, w, h, &mut rng(5), &mut batch);
        let mut r = rng(5);
        let mut single = vec![0.0; 7 * w * h];
        let mut ms = Vec::new();
        for (s, kp) in kps.iter().enumerate() {
            ms.extend(encode(&enc, kp, w, h, &mut r, &mut single));
            assert_eq!(
                &batch[s * 7 * w * h..(s + 1) * 7 * w * h],
                &single[..],
                "{enc} sample {s}"
            );
        }
        assert_eq!(mb, ms);
        let mut again = vec![0.0; 5 * 7 * w * h];
        encode_batch(&enc, &kps, w, h, &mut rng(5), &mut again);
        assert_eq!(batch, again);
    }
    // A different seed gives different randomized-rounding targets.
    let mut a = vec![0.0; 5 * 7 * w * h];
    let mut b = vec![0.0; 5 * 7 * w * h];
    encode_batch(
        &TargetEncoder::RandomizedRounding,
        &kps,
        w,
        h,
        &mut rng(1),
        &mut a,
    );
    encode_batch(
        &TargetEncoder::RandomizedRounding,
        &kps,
        w,
        h,
        &mut rng(2),
        &mut b,
    );
    assert_ne!(a, b);
}

#[test]
fn encoder_config_parses_and_serialises() {
    assert_eq!(
        TargetEncoder::default(),
        TargetEncoder::Gaussian {
            sigma: 10.0,
            subpixel: false
        }
    );
    let json = serde_json::to_string(&TargetEncoder::default()).unwrap();
    assert_eq!(json, r#"{"kind":"gaussian","sigma":10.0,"subpixel":false}"#);
    let rr: TargetEncoder = serde_json::from_str(r#"{"kind":"randomized-rounding"}"#).unwrap();
    assert_eq!(rr, TargetEncoder::RandomizedRounding);
    let g: TargetEncoder = serde_json::from_str(r#"{"kind":"gaussian","sigma":2.5}"#).unwrap();
    assert_eq!(
        g,
        TargetEncoder::Gaussian {
            sigma: 2.5,
            subpixel: false
        }
    );
    assert!(serde_json::from_str::<TargetEncoder>(r#"{"kind":"gaussian","sigmaa":2}"#).is_err());
    assert_eq!(
        "rr".parse::<TargetEncoder>().unwrap(),
        TargetEncoder::RandomizedRounding
    );
    assert_eq!(
        "gaussian-subpixel:2".parse::<TargetEncoder>().unwrap(),
        TargetEncoder::Gaussian {
            sigma: 2.0,
            subpixel: true
        }
    );
    assert_eq!(
        "gaussian-round:2".parse::<TargetEncoder>().unwrap(),
        TargetEncoder::GaussianRound { sigma: 2.0 }
    );
    assert!("gaussian-round:0".parse::<TargetEncoder>().is_err());
    assert!("gaussian:0".parse::<TargetEncoder>().is_err());
    assert!("gaussian:x".parse::<TargetEncoder>().is_err());
    assert!("floor:1".parse::<TargetEncoder>().is_err());
    assert!("nope".parse::<TargetEncoder>().is_err());
    for e in [
        "gaussian:2.5",
        "gaussian-subpixel:1",
        "gaussian-round:1.5",
        "randomized-rounding",
        "floor",
        "round",
    ] {
        let enc: TargetEncoder = e.parse().unwrap();
        assert_eq!(enc.to_string().parse::<TargetEncoder>().unwrap(), enc);
    }
    let _ = gaussian::integer_centre([1.0, 2.0]);
}

#[test]
fn batch_tensors_have_the_documented_shapes() {
    let kps = vec![
        Keypoints::new(vec![[1.0, 2.0], [30.0, 1.0]]),
        Keypoints::new(vec![[3.5, 0.5], [0.0, 0.0]]),
    ];
    let dev = hmreg::device::test_device();
    let (maps, mask) =
        hmreg::codec::encode_batch_tensors(&TargetEncoder::Floor, &kps, 8, 4, &mut rng(0), &dev)
            .unwrap();
    assert_eq!(maps.dims(), &[2, 2, 4, 8]);
    assert_eq!(
        mask.to_vec2::<f32>().unwrap(),
        vec![vec![1.0, 0.0], vec![1.0, 1.0]]
    );
    let v = maps.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(v[2 * 8 + 1], 1.0); // sample 0, point 0 at (1, 2)
    assert_eq!(v[2 * 32 + 3], 1.0); // sample 1, point 0 at (3, 0)
}
