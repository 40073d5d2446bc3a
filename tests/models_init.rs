//! Initialisation schemes of the reference libraries, seeded reproducibility, and ICNR's
//! checkerboard-free start.

use candle_core::Tensor;
use hmreg::models::{build, Arch, KeypointNet, ModelConfig, ParamStore};

fn make(arch: Arch, width: f32, seed: u64) -> (ParamStore, Box<dyn KeypointNet>) {
    let mut store = ParamStore::new(&hmreg::device::test_device(), seed);
    let cfg = ModelConfig {
        arch,
        points: 5,
        input_size: 64,
        width,
        heatmap_stride: 0,
        head: hmreg::models::HeadKind::Binary,
        ..Default::default()
    };
    let net = build(&cfg, &mut store).unwrap();
    (store, net)
}

fn vals(store: &ParamStore, name: &str) -> Vec<f32> {
    store
        .get(name)
        .unwrap_or_else(|| panic!("{name}"))
        .var
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn mean_std(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n;
    (m, var.sqrt())
}

#[test]
fn hrnet_init_follows_init_weights() {
    let (store, _) = make(Arch::Hrnet18, 1.0, 0);
    for name in [
        "conv1.weight",
        "stage4.2.branches.3.3.conv2.weight",
        "head.0.weight",
    ] {
        let (m, s) = mean_std(&vals(&store, name));
        assert!(
            m.abs() < 1e-4 && (s - 0.001).abs() < 1e-4,
            "{name}: mean {m} std {s}"
        );
    }
    assert!(vals(&store, "bn1.weight").iter().all(|&v| v == 1.0));
    assert!(vals(&store, "bn1.bias").iter().all(|&v| v == 0.0));
    assert!(vals(&store, "bn1.running_var").iter().all(|&v| v == 1.0));
    assert!(vals(&store, "bn1.running_mean").iter().all(|&v| v == 0.0));
}

#[test]
fn unet_init_follows_torchvision_and_fastai() {
    let (store, _) = make(Arch::UnetResnet18, 1.0, 0);
    // torchvision: kaiming_normal(fan_out): layer4 3x3 512 -> std sqrt(2 / (512 * 9)).
    let (_, s) = mean_std(&vals(&store, "layer4.1.conv2.weight"));
    assert!((s / (2.0f64 / 4608.0).sqrt() - 1.0).abs() < 0.02, "{s}");
    // fastai kaiming_normal(fan_in) on decoder convs, biases zero.
    let (_, s) = mean_std(&vals(&store, "layers.3.0.0.weight"));
    assert!((s / (2.0f64 / 4608.0).sqrt() - 1.0).abs() < 0.02, "{s}");
    assert!(vals(&store, "layers.4.conv1.0.bias")
        .iter()
        .all(|&v| v == 0.0));
    // fastai BatchNorm(): weight 1, bias 1e-3; encoder BN bias 0.
    assert!(vals(&store, "layers.5.bn.bias").iter().all(|&v| v == 1e-3));
    assert!(vals(&store, "layers.1.weight").iter().all(|&v| v == 1.0));
    assert!(vals(&store, "layer1.0.bn1.bias").iter().all(|&v| v == 0.0));
    // The last 1x1 conv: PyTorch default weight U(+-1/sqrt(99)), bias N(0, 0.01).
    let w = vals(&store, "layers.12.0.weight");
    let bound = 1.0 / 99f32.sqrt();
    assert!(w.iter().all(|v| v.abs() <= bound) && w.iter().any(|v| v.abs() > bound / 2.0));
    let b = vals(&store, "layers.12.0.bias");
    assert!(b.iter().all(|v| v.abs() < 0.05) && b.iter().any(|&v| v != 0.0));
}

#[test]
fn icnr_makes_sub_pixels_equal() {
    let (store, _) = make(Arch::UnetResnet18, 0.25, 3);
    for name in ["layers.4.shuf.0.0.weight", "layers.8.0.0.weight"] {
        let t = store.get(name).unwrap().var.as_tensor().clone();
        let (co, ci, _, _) = t.dims4().unwrap();
        let w: Vec<Vec<f32>> = t.reshape((co, ci)).unwrap().to_vec2().unwrap();
        for o in 0..co {
            assert_eq!(w[o], w[o - o % 4], "{name} row {o}");
        }
        assert_ne!(w[0], w[4]);
        assert!(vals(&store, &name.replace("weight", "bias"))
            .iter()
            .all(|&v| v == 0.0));
    }
    // So PixelShuffle of the conv output at init gives equal 2x2 blocks.
    let t = store
        .get("layers.8.0.0.weight")
        .unwrap()
        .var
        .as_tensor()
        .clone();
    let ci = t.dim(1).unwrap();
    let x = Tensor::arange(0f32, (ci * 4 * 4) as f32, &hmreg::device::test_device())
        .unwrap()
        .reshape((1, ci, 4, 4))
        .unwrap();
    let y =
        hmreg::ops::pixel_shuffle(&hmreg::ops::conv2d(&x, &t, None, 1, 0, 1).unwrap(), 2).unwrap();
    let y: Vec<Vec<Vec<f32>>> = y.squeeze(0).unwrap().to_vec3().unwrap();
    for plane in &y {
        for r in 0..8 {
            for c in 0..8 {
                assert_eq!(plane[r][c], plane[r - r % 2][c - c % 2]);
            }
        }
    }
}

#[test]
fn seeds_reproduce_exactly() {
    let x = Tensor::ones(
        (1, 3, 64, 64),
        candle_core::DType::F32,
        &hmreg::device::test_device(),
    )
    .unwrap();
    let (a, na) = make(Arch::Hrnet18, 0.25, 42);
    let (b, nb) = make(Arch::Hrnet18, 0.25, 42);
    let (c, _) = make(Arch::Hrnet18, 0.25, 43);
    assert_eq!(
        vals(&a, "stage3.1.branches.2.0.conv1.weight"),
        vals(&b, "stage3.1.branches.2.0.conv1.weight")
    );
    assert_ne!(
        vals(&a, "stage3.1.branches.2.0.conv1.weight"),
        vals(&c, "stage3.1.branches.2.0.conv1.weight")
    );
    let ya: Vec<f32> = na
        .forward_t(&x, false)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let yb: Vec<f32> = nb
        .forward_t(&x, false)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(ya, yb);
}
