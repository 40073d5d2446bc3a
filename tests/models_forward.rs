//! Forward shapes, gradients reaching every parameter, and overfitting one batch, on thin models.

use candle_core::{DType, Tensor, Var};
use hmreg::models::{build, Arch, KeypointNet, ModelConfig, ParamStore};
use rand::{Rng, SeedableRng};

fn thin(arch: Arch, width: f32, seed: u64) -> (ParamStore, Box<dyn KeypointNet>) {
    let mut store = ParamStore::new(&hmreg::device::test_device(), seed);
    let cfg = ModelConfig {
        arch,
        points: 3,
        input_size: 64,
        width,
        heatmap_stride: 0,
        head: hmreg::models::HeadKind::Binary,
        ..Default::default()
    };
    let net = build(&cfg, &mut store).unwrap();
    (store, net)
}

fn image(n: usize, h: usize, w: usize, seed: u64) -> Tensor {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f32> = (0..n * 3 * h * w)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    Tensor::from_vec(v, (n, 3, h, w), &hmreg::device::test_device()).unwrap()
}

#[test]
fn output_shapes_follow_input_size() {
    for (arch, width) in [
        (Arch::Hrnet18, 0.25),
        (Arch::Hrnet32, 0.125),
        (Arch::UnetResnet18, 0.0625),
    ] {
        let (_, net) = thin(arch, width, 1);
        let s = net.stride();
        for (h, w) in [(64, 64), (64, 96)] {
            let y = net.forward_t(&image(2, h, w, 2), true).unwrap();
            assert_eq!(y.dims(), &[2, 3, h / s, w / s], "{arch} {h}x{w}");
            let y = net.forward_t(&image(1, h, w, 2), false).unwrap();
            assert_eq!(y.dims(), &[1, 3, h / s, w / s], "{arch} eval {h}x{w}");
        }
        assert!(
            net.forward_t(&image(1, 48, 64, 0), false).is_err(),
            "48 is not a multiple of 32"
        );
        let last = net.layers().last().unwrap().output;
        assert_eq!(last, [3, 64 / s, 64 / s]);
    }
}

#[test]
fn bad_configs_are_refused() {
    let mut store = ParamStore::new(&hmreg::device::test_device(), 0);
    for cfg in [
        ModelConfig {
            input_size: 100,
            ..Default::default()
        },
        ModelConfig {
            points: 0,
            ..Default::default()
        },
        ModelConfig {
            width: 0.0,
            ..Default::default()
        },
        ModelConfig {
            width: f32::NAN,
            ..Default::default()
        },
    ] {
        assert!(build(&cfg, &mut store).is_err(), "{cfg:?}");
    }
    assert!("unet-resnet18".parse::<Arch>().is_ok());
    assert!("resnet".parse::<Arch>().is_err());
    let cfg: ModelConfig = toml::from_str("arch = \"hrnet32\"\nwidth = 0.5").unwrap();
    assert_eq!(cfg.arch, Arch::Hrnet32);
    assert_eq!(cfg.points, 5);
    assert!(toml::from_str::<ModelConfig>("depth = 3").is_err());
}

fn every_param_gets_gradient(arch: Arch, width: f32) {
    let (store, net) = thin(arch, width, 3);
    let x = image(2, 64, 64, 4);
    let y = net.forward_t(&x, true).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let wv: Vec<f32> = (0..y.elem_count())
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let wt = Tensor::from_vec(wv, y.dims(), &hmreg::device::test_device()).unwrap();
    let loss = (y * wt).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let mut n = 0;
    for p in store.params().iter().filter(|p| p.is_trainable()) {
        let g = grads
            .get(p.var.as_tensor())
            .unwrap_or_else(|| panic!("{arch}: no gradient for {}", p.name));
        let s = g
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            s > 0.0 && s.is_finite(),
            "{arch}: gradient of {} is {s}",
            p.name
        );
        n += 1;
    }
    assert!(n > 20);
    // Train mode updated the running statistics.
    let rv = store
        .get("bn1.running_var")
        .unwrap()
        .var
        .as_tensor()
        .to_vec1::<f32>()
        .unwrap();
    assert!(rv.iter().any(|&v| (v - 1.0).abs() > 1e-6));
}

#[test]
fn hrnet_gradients_reach_every_parameter() {
    every_param_gets_gradient(Arch::Hrnet18, 0.25);
}

#[test]
fn unet_gradients_reach_every_parameter() {
    every_param_gets_gradient(Arch::UnetResnet18, 0.0625);
}

/// Plain Adam over the store's trainable vars.
fn overfit(arch: Arch, width: f32, lr: f64, steps: usize) -> (f32, f32) {
    let (store, net) = thin(arch, width, 7);
    let x = image(2, 64, 64, 8);
    let s = net.stride();
    let (h, w) = (64 / s, 64 / s);
    // Smooth blob targets, one per map.
    let mut t = vec![0f32; 2 * 3 * h * w];
    for (k, chunk) in t.chunks_mut(h * w).enumerate() {
        let (cx, cy) = ((k * 5 % w) as f32 + 2.0, (k * 3 % h) as f32 + 3.0);
        let sigma = w as f32 / 8.0;
        for yy in 0..h {
            for xx in 0..w {
                let d2 = (xx as f32 - cx).powi(2) + (yy as f32 - cy).powi(2);
                chunk[yy * w + xx] = (-d2 / (2.0 * sigma * sigma)).exp();
            }
        }
    }
    let target = Tensor::from_vec(t, (2, 3, h, w), &hmreg::device::test_device()).unwrap();
    let vars: Vec<Var> = store
        .params()
        .iter()
        .filter(|p| p.is_trainable())
        .map(|p| p.var.clone())
        .collect();
    let mut m: Vec<Tensor> = vars.iter().map(|v| v.zeros_like().unwrap()).collect();
    let mut v2: Vec<Tensor> = m.clone();
    let (b1, b2, eps) = (0.9f64, 0.99f64, 1e-5f64);
    let mut first = None;
    let mut last = f32::MAX;
    for step in 1..=steps {
        let y = net.forward_t(&x, true).unwrap();
        let loss = (y - &target).unwrap().sqr().unwrap().mean_all().unwrap();
        let l = loss
            .to_dtype(DType::F32)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        first.get_or_insert(l);
        last = l;
        if l < first.unwrap() / 10.0 {
            break;
        }
        let grads = loss.backward().unwrap();
        for (i, var) in vars.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            m[i] = ((&m[i] * b1).unwrap() + (g * (1.0 - b1)).unwrap()).unwrap();
            v2[i] = ((&v2[i] * b2).unwrap() + (g.sqr().unwrap() * (1.0 - b2)).unwrap()).unwrap();
            let mh = (&m[i] / (1.0 - b1.powi(step as i32))).unwrap();
            let vh = (&v2[i] / (1.0 - b2.powi(step as i32))).unwrap();
            let upd = (mh / (vh.sqrt().unwrap() + eps).unwrap()).unwrap();
            var.set(&(var.as_tensor() - (upd * lr).unwrap()).unwrap())
                .unwrap();
        }
    }
    (first.unwrap(), last)
}

#[test]
fn thin_hrnet_overfits_one_batch() {
    let (first, last) = overfit(Arch::Hrnet18, 0.25, 1e-2, 150);
    assert!(last < first / 10.0, "loss {first} -> {last}");
}

#[test]
fn thin_unet_overfits_one_batch() {
    let (first, last) = overfit(Arch::UnetResnet18, 0.0625, 3e-3, 150);
    assert!(last < first / 10.0, "loss {first} -> {last}");
}

/// Full-size models at 256x256, batch 1: output shapes and forward time. Slow on 2 cores, so
/// ignored by default: `cargo test --test models_forward -- --ignored --nocapture`.
#[test]
#[ignore]
fn full_size_forward() {
    for (arch, out) in [
        (Arch::Hrnet18, 64),
        (Arch::Hrnet32, 64),
        (Arch::UnetResnet18, 256),
    ] {
        let mut store = ParamStore::new(&hmreg::device::test_device(), 0);
        let cfg = ModelConfig {
            arch,
            ..Default::default()
        };
        let net = build(&cfg, &mut store).unwrap();
        let x = image(1, 256, 256, 1);
        for train in [false, true] {
            let t = std::time::Instant::now();
            let y = net.forward_t(&x, train).unwrap();
            assert_eq!(y.dims(), &[1, 5, out, out]);
            println!(
                "{arch} train={train}: forward {:.2} s",
                t.elapsed().as_secs_f64()
            );
        }
    }
}

#[test]
fn inference_with_folded_batch_norm_matches_the_unfused_layers() {
    for (arch, width) in [(Arch::Hrnet18, 0.25), (Arch::UnetResnet18, 0.0625)] {
        let (_, net) = thin(arch, width, 3);
        // Two training passes move the running statistics away from (0, 1).
        for seed in [4, 5] {
            net.forward_t(&image(2, 64, 64, seed), true).unwrap();
        }
        let x = image(2, 64, 64, 6);
        // An input that needs a gradient keeps convolution and BatchNorm apart.
        let tracked = Var::from_tensor(&x).unwrap();
        let folded = net.forward_t(&x, false).unwrap();
        let unfused = net.forward_t(tracked.as_tensor(), false).unwrap();
        let max_abs = |t: &Tensor| {
            t.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        let diff = max_abs(&(&folded - &unfused).unwrap());
        let scale = max_abs(&unfused);
        assert!(
            scale > 0.0 && diff <= 1e-4 * scale.max(1.0),
            "{arch}: {diff} (scale {scale})"
        );
    }
}

/// The stride setting gives maps of input / stride for both architectures, the native stride
/// when unset, and refuses strides the architecture cannot produce.
#[test]
fn heatmap_stride_sets_the_map_size() {
    let x = Tensor::zeros((1, 3, 64, 64), DType::F32, &hmreg::device::test_device()).unwrap();
    for (arch, strides) in [
        (Arch::Hrnet18, vec![0, 4, 8, 16, 32]),
        (Arch::UnetResnet18, vec![0, 1, 2, 8, 32]),
    ] {
        for s in strides {
            let mut store = ParamStore::new(&hmreg::device::test_device(), 0);
            let cfg = ModelConfig {
                arch,
                points: 3,
                input_size: 64,
                width: 0.0625,
                heatmap_stride: s,
                head: hmreg::models::HeadKind::Binary,
                ..Default::default()
            };
            let net = build(&cfg, &mut store).unwrap();
            let want = if s == 0 { arch.native_stride() } else { s };
            assert_eq!(net.stride(), want);
            for train in [true, false] {
                let y = net.forward_t(&x, train).unwrap();
                assert_eq!(y.dims(), &[1, 3, 64 / want, 64 / want], "{arch} stride {s}");
            }
        }
    }
    for (arch, bad) in [
        (Arch::Hrnet18, 2),
        (Arch::Hrnet18, 12),
        (Arch::Hrnet18, 64),
        (Arch::UnetResnet18, 3),
    ] {
        let cfg = ModelConfig {
            arch,
            heatmap_stride: bad,
            ..Default::default()
        };
        let err = build(&cfg, &mut ParamStore::new(&hmreg::device::test_device(), 0))
            .err()
            .unwrap();
        assert!(err.to_string().contains("heatmap_stride"), "{err}");
    }
}

/// Any code written against Candle's `ModuleT` runs the networks.
fn forward_module<M: candle_core::ModuleT + ?Sized>(m: &M, x: &Tensor) -> Tensor {
    m.forward_t(x, false).unwrap()
}

#[test]
fn networks_are_candle_modules() {
    for (arch, width) in [(Arch::Hrnet18, 0.25), (Arch::UnetResnet18, 0.0625)] {
        let (_, net) = thin(arch, width, 4);
        let x = image(1, 64, 64, 5);
        let want: Vec<f32> = net
            .forward_t(&x, false)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let got: Vec<f32> = forward_module(&*net, &x)
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(got, want, "{arch}");
    }
}
