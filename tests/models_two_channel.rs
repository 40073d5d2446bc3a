//! The randomized-rounding paper's head: a background and a foreground map per point, trained
//! with a per-pixel two-class softmax cross-entropy.

use candle_core::{DType, Tensor, Var};
use hmreg::learn::loss::{LossConfig, LossKind};
use hmreg::models::{build, Arch, HeadKind, ModelConfig, ParamStore};

/// The head's last convolution doubles its outputs; the network returns one map per point.
#[test]
fn two_channel_head_adds_one_output_per_point_and_returns_l_maps() {
    let mut store = ParamStore::new(&hmreg::device::test_device(), 0);
    let cfg = ModelConfig {
        arch: Arch::Hrnet18,
        points: 5,
        input_size: 256,
        width: 1.0,
        heatmap_stride: 0,
        head: HeadKind::TwoChannel,
        ..Default::default()
    };
    build(&cfg, &mut store).unwrap();
    // head.3 is a 1x1 conv from 270 channels, no bias: 5 more outputs add 270 * 5 weights.
    assert_eq!(store.num_parameters(), 9_637_050 + 270 * 5);

    for arch in [Arch::Hrnet18, Arch::UnetResnet18] {
        let mut store = ParamStore::new(&hmreg::device::test_device(), 0);
        let cfg = ModelConfig {
            arch,
            points: 3,
            input_size: 64,
            width: 0.0625,
            heatmap_stride: 8,
            head: HeadKind::TwoChannel,
            ..Default::default()
        };
        let net = build(&cfg, &mut store).unwrap();
        let x = Tensor::zeros((2, 3, 64, 64), DType::F32, &hmreg::device::test_device()).unwrap();
        let y = net.forward_t(&x, true).unwrap();
        assert_eq!(y.dims(), &[2, 3, 8, 8], "{arch}");
    }
}

/// Per-pixel softmax cross-entropy over (background, foreground), averaged over pixels, from the
/// raw two-channel output `raw[c][l][p]` (c = 0 background, 1 foreground).
fn hand_cross_entropy(raw: &[f64], points: usize, pixels: usize, target: &[f64]) -> f64 {
    let mut sum = 0.0;
    for l in 0..points {
        for p in 0..pixels {
            let b = raw[l * pixels + p];
            let f = raw[(points + l) * pixels + p];
            let chosen = if target[l * pixels + p] > 0.5 { f } else { b };
            sum += (b.exp() + f.exp()).ln() - chosen;
        }
    }
    sum / (points * pixels) as f64
}

#[test]
fn its_loss_is_the_softmax_cross_entropy_with_matching_gradients() {
    let (points, h, w) = (2usize, 3usize, 3usize);
    let pixels = h * w;
    let raw: Vec<f64> = (0..2 * points * pixels)
        .map(|i| ((i * 37 % 23) as f64 - 11.0) / 4.0)
        .collect();
    let mut target = vec![0.0f64; points * pixels];
    target[4] = 1.0; // point 0, centre pixel
    target[pixels + 2] = 1.0; // point 1, top right
    let y = Var::from_vec(
        raw.iter().map(|&v| v as f32).collect::<Vec<_>>(),
        (1, 2 * points, h, w),
        &hmreg::device::test_device(),
    )
    .unwrap();
    let t = Tensor::from_vec(
        target.iter().map(|&v| v as f32).collect::<Vec<_>>(),
        (1, points, h, w),
        &hmreg::device::test_device(),
    )
    .unwrap();
    let mask = Tensor::ones((1, points), DType::F32, &hmreg::device::test_device()).unwrap();
    let loss_cfg = LossConfig {
        kind: LossKind::Bce,
        pos_weight: 1.0,
    };
    let maps = HeadKind::TwoChannel.maps(y.as_tensor().clone()).unwrap();
    let loss = loss_cfg.compute(&maps, &t, &mask).unwrap();
    let got = loss
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let want = hand_cross_entropy(&raw, points, pixels, &target);
    assert!(
        (got - want).abs() < 1e-5 * want.abs().max(1.0),
        "{got} vs {want}"
    );

    let grad: Vec<f32> = loss
        .backward()
        .unwrap()
        .get(y.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let eps = 1e-5;
    for i in 0..raw.len() {
        let mut plus = raw.clone();
        let mut minus = raw.clone();
        plus[i] += eps;
        minus[i] -= eps;
        let fd = (hand_cross_entropy(&plus, points, pixels, &target)
            - hand_cross_entropy(&minus, points, pixels, &target))
            / (2.0 * eps);
        assert!(
            (grad[i] as f64 - fd).abs() < 1e-5,
            "d loss / d raw[{i}]: autodiff {} vs finite differences {fd}",
            grad[i]
        );
    }
}
