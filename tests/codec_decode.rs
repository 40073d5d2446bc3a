//! Decoders: argmax, top-k softmax, soft-argmax, DARK and the quarter offset, on batched tensors.

use candle_core::{DType, Tensor};
use hmreg::codec::{decode, decode_one, encode, to_frame, Decoder, TargetEncoder};
use hmreg::Keypoints;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn gaussian_map(p: [f32; 2], w: usize, h: usize, sigma: f32, subpixel: bool) -> Vec<f32> {
    let mut out = vec![0.0; w * h];
    let enc = TargetEncoder::Gaussian { sigma, subpixel };
    let mask = encode(
        &enc,
        &Keypoints::new(vec![p]),
        w,
        h,
        &mut ChaCha8Rng::seed_from_u64(0),
        &mut out,
    );
    assert!(mask[0]);
    out
}

/// Soft-argmax tolerance: 0.01 heatmap px for a sub-pixel Gaussian of sigma 3 at least 4 sigma
/// from the border, temperature 0.05 (measured worst case 0.0013 px). On a map in [0, 1] the
/// temperature must suit sigma: too cold undersamples the sharpened peak, too warm lets the zeros
/// outside the window (weight exp(-1/T) each) pull towards the map centre.
const SOFT_ARGMAX_TOL: f32 = 0.01;
/// DARK tolerance: 0.005 heatmap px for sigma 2 (measured worst case 0.0006 px): the log of a
/// Gaussian is quadratic, so the Newton step is nearly exact; smoothing a sampled Gaussian costs
/// the rest.
const DARK_TOL: f32 = 0.005;

proptest! {
    #[test]
    fn top_k_of_a_single_active_pixel_returns_it(
        w in 1usize..40, h in 1usize..40, i in 0usize..1600, k in 1usize..20, v in 0.01f32..100.0,
    ) {
        let i = i % (w * h);
        let mut map = vec![0.0; w * h];
        map[i] = v;
        // softmax over raw values would give the other (zero) pixels weight too, unless the
        // active pixel dominates: the paper's decoder is meant for logits, so use a large gap.
        for m in map.iter_mut() { if *m == 0.0 { *m = -1e4; } }
        let (xy, conf) = decode_one(&map, w, h, &Decoder::TopK { k });
        prop_assert_eq!(xy, [(i % w) as f32, (i / w) as f32]);
        prop_assert_eq!(conf, v);
    }

    #[test]
    fn soft_argmax_and_dark_recover_a_subpixel_centre(
        fx in 12f32..52.0, fy in 12f32..36.0,
    ) {
        let (w, h, sigma) = (64, 48, 2.0);
        let map3 = gaussian_map([fx, fy], w, h, 3.0, true);
        let (s, _) = decode_one(&map3, w, h, &Decoder::SoftArgmax { temperature: 0.05 });
        prop_assert!((s[0] - fx).abs() < SOFT_ARGMAX_TOL && (s[1] - fy).abs() < SOFT_ARGMAX_TOL,
            "soft-argmax {:?} vs {:?}", s, [fx, fy]);
        let map = gaussian_map([fx, fy], w, h, sigma, true);
        let (d, _) = decode_one(&map, w, h, &Decoder::Dark { sigma: Some(sigma) });
        prop_assert!((d[0] - fx).abs() < DARK_TOL && (d[1] - fy).abs() < DARK_TOL,
            "dark {:?} vs {:?}", d, [fx, fy]);
    }
}

#[test]
fn top_k_is_the_softmax_weighted_mean_of_the_k_largest() {
    // 4x3 map, k = 3: values 2 at (1,0), 1 at (3,2), 1 at (0,1); the rest smaller.
    let (w, h) = (4, 3);
    let mut map = vec![-1.0f32; w * h];
    map[1] = 2.0;
    map[2 * w + 3] = 1.0;
    map[w] = 1.0;
    map[5] = 0.5; // fourth largest: must not count with k = 3
    let e = [2f64.exp(), 1f64.exp(), 1f64.exp()];
    let s: f64 = e.iter().sum();
    let want_x = (e[0] * 1.0 + e[1] * 3.0 + e[2] * 0.0) / s;
    let want_y = (e[0] * 0.0 + e[1] * 2.0 + e[2] * 1.0) / s;
    let (xy, conf) = decode_one(&map, w, h, &Decoder::TopK { k: 3 });
    assert!((xy[0] as f64 - want_x).abs() < 1e-6, "{xy:?}");
    assert!((xy[1] as f64 - want_y).abs() < 1e-6, "{xy:?}");
    assert_eq!(conf, 2.0);
    // k = 1 is argmax.
    assert_eq!(
        decode_one(&map, w, h, &Decoder::TopK { k: 1 }).0,
        [1.0, 0.0]
    );
    // k larger than the map uses the whole map.
    let (all, _) = decode_one(&map, w, h, &Decoder::TopK { k: 100 });
    assert!(all[0].is_finite() && all[1].is_finite());
}

#[test]
fn quarter_offset_moves_towards_the_larger_neighbour() {
    let (w, h) = (5, 5);
    let mut map = vec![0.0f32; w * h];
    map[2 * w + 2] = 1.0;
    map[2 * w + 3] = 0.6; // right neighbour larger than left
    map[w + 2] = 0.3; // upper neighbour larger than lower
    let (xy, _) = decode_one(&map, w, h, &Decoder::QuarterOffset);
    assert_eq!(xy, [2.25, 1.75]);
    // Equal neighbours: no shift; on the border only the axis with two neighbours moves.
    let mut edge = vec![0.0f32; w * h];
    edge[2 * w] = 1.0;
    edge[w] = 0.5;
    assert_eq!(
        decode_one(&edge, w, h, &Decoder::QuarterOffset).0,
        [0.0, 1.75]
    );
}

#[test]
fn dark_falls_back_to_argmax_near_the_border_and_on_flat_maps() {
    let (w, h) = (16, 16);
    let map = gaussian_map([1.4, 8.3], w, h, 2.0, true);
    assert_eq!(
        decode_one(&map, w, h, &Decoder::Dark { sigma: Some(2.0) }).0,
        [1.0, 8.0]
    );
    let flat = vec![0.0f32; w * h];
    assert_eq!(
        decode_one(&flat, w, h, &Decoder::Dark { sigma: Some(2.0) }).0,
        [0.0, 0.0]
    );
}

#[test]
fn batched_tensor_decoding_keeps_row_major_order_on_any_dtype() {
    // N = 2 samples x C = 3 points of 20x10 maps, each a Gaussian at a known integer centre.
    let (w, h) = (20usize, 10usize);
    let centres = [
        [3.0f32, 4.0],
        [17.0, 2.0],
        [9.0, 9.0],
        [0.0, 0.0],
        [11.0, 5.0],
        [6.0, 1.0],
    ];
    let mut data = Vec::new();
    for c in centres {
        data.extend(gaussian_map(c, w, h, 1.5, false));
    }
    let t = Tensor::from_vec(data, (2, 3, h, w), &hmreg::device::test_device()).unwrap();
    for dtype in [DType::F32, DType::F16, DType::BF16, DType::F64] {
        let tt = t.to_dtype(dtype).unwrap();
        for dec in [Decoder::Argmax, Decoder::QuarterOffset] {
            let d = decode(&tt, &dec).unwrap();
            assert_eq!((d.n, d.points), (2, 3));
            assert_eq!(d.xy.len(), 6);
            for (i, c) in centres.iter().enumerate() {
                if dec == Decoder::Argmax {
                    assert_eq!(d.xy[i], *c, "{dtype:?} map {i}");
                } else {
                    assert!((d.xy[i][0] - c[0]).abs() <= 0.25 && (d.xy[i][1] - c[1]).abs() <= 0.25);
                }
                assert_eq!(d.confidence[i], 1.0);
            }
            assert_eq!(d.sample(1)[0], d.xy[3]);
        }
    }
    // Decoded points in input pixels: a 4x larger frame.
    let d = decode(&t, &Decoder::Argmax).unwrap();
    let kps = d.to_keypoints(4.0, 4.0);
    assert_eq!(kps.len(), 2);
    assert_eq!(kps[0].xy[1], [68.0, 8.0]);
    assert_eq!(to_frame([1.5, 2.0], 4.0, 2.0), [6.0, 4.0]);
    // Wrong rank is an error, not a panic.
    assert!(decode(&t.flatten_all().unwrap(), &Decoder::Argmax).is_err());
}

#[test]
fn decoder_config_parses_and_serialises() {
    // One default, validation's: argmax.
    assert_eq!(Decoder::default(), Decoder::Argmax);
    assert_eq!(
        serde_json::to_string(&Decoder::TopK { k: 9 }).unwrap(),
        r#"{"kind":"top-k","k":9}"#
    );
    let cases = [
        ("argmax", Decoder::Argmax),
        ("topk", Decoder::TopK { k: 9 }),
        ("topk:4", Decoder::TopK { k: 4 }),
        ("top-k:2", Decoder::TopK { k: 2 }),
        ("softargmax", Decoder::SoftArgmax { temperature: 1.0 }),
        ("softargmax:0.05", Decoder::SoftArgmax { temperature: 0.05 }),
        ("dark", Decoder::Dark { sigma: None }),
        ("dark:2", Decoder::Dark { sigma: Some(2.0) }),
        ("quarter", Decoder::QuarterOffset),
    ];
    for (s, d) in cases {
        assert_eq!(s.parse::<Decoder>().unwrap(), d, "{s}");
        assert_eq!(d.to_string().parse::<Decoder>().unwrap(), d);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Decoder>(&json).unwrap(), d);
    }
    for bad in [
        "topk:0",
        "topk:x",
        "softargmax:0",
        "dark:-1",
        "argmax:3",
        "median",
    ] {
        assert!(bad.parse::<Decoder>().is_err(), "{bad}");
    }
}

/// On an 8x8 map the smoothing kernel of sigma 1.5 (radius 5) reaches past every border: DARK
/// must still refine sub-pixel Gaussians (the mirrored border of OpenCV's blur moved the peak by
/// half a pixel on average, worse than plain rounding).
#[test]
fn dark_refines_on_maps_smaller_than_its_smoothing_kernel() {
    let (n, sigma) = (8, 1.5);
    let (mut dark_err, mut round_err, mut count) = (0f32, 0f32, 0);
    for i in 0..=20 {
        for j in 0..=20 {
            // Centres where DARK applies (two pixels of margin around the argmax).
            let p = [2.0 + 3.4 * i as f32 / 20.0, 2.0 + 3.4 * j as f32 / 20.0];
            let map = gaussian_map(p, n, n, sigma, true);
            let (d, _) = decode_one(&map, n, n, &Decoder::Dark { sigma: Some(sigma) });
            dark_err += (d[0] - p[0]).hypot(d[1] - p[1]);
            round_err += (p[0].round() - p[0]).hypot(p[1].round() - p[1]);
            count += 1;
        }
    }
    let (dark_err, round_err) = (dark_err / count as f32, round_err / count as f32);
    assert!(dark_err < 0.1, "DARK mean error {dark_err} px");
    assert!(
        dark_err < round_err / 4.0,
        "{dark_err} vs rounding {round_err}"
    );
}
