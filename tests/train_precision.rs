//! Mixed precision: bf16/f16 forward passes track f32, a half-precision step trains f32 master
//! weights, f16 loss scaling skips overflowing steps. Runs on the test suite's device (on the
//! CPU through the portable path, which is the one a GPU runs; the command line refuses half
//! precision on the CPU, the library does not).

mod common;

use candle_core::{DType, Device, Tensor};
use hmreg::device::test_device;
use hmreg::learn::optim::N_LR_GROUPS;
use hmreg::learn::precision::Precision;
use hmreg::models::{build, Arch, ModelConfig, ParamStore};
use hmreg::train::step::train_step;
use hmreg::train::Setup;

use common::on_device_path as on_device;

/// The half precisions the device computes in: Candle's CPU matmul has no bf16, so the CPU (the
/// portable path's stand-in for a GPU here) checks f16 only.
fn half_precisions(dev: &Device) -> Vec<Precision> {
    if dev.is_cpu() {
        vec![Precision::F16]
    } else {
        vec![Precision::Bf16, Precision::F16]
    }
}

fn relative_error(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (
        a.to_dtype(DType::F64).unwrap(),
        b.to_dtype(DType::F64).unwrap(),
    );
    let d = (&a - &b).unwrap().sqr().unwrap().sum_all().unwrap();
    let n = a.sqr().unwrap().sum_all().unwrap();
    (d.to_scalar::<f64>().unwrap() / n.to_scalar::<f64>().unwrap()).sqrt()
}

#[test]
fn half_precision_forward_passes_track_f32() {
    on_device(|dev| {
        for arch in [Arch::UnetResnet18, Arch::Hrnet18] {
            let cfg = ModelConfig {
                arch,
                points: 5,
                input_size: 128,
                width: 0.125,
                ..Default::default()
            };
            let mut store = ParamStore::new(dev, 4);
            let model = build(&cfg, &mut store).unwrap();
            // Training mode: BatchNorm renormalises every layer with the batch's statistics.
            // (In inference mode an untrained HRNet, all of whose convolutions start at
            // N(0, 0.001²), shrinks its activations layer after layer to ~1e-14, which f16
            // flushes to zero: nothing a trained model does.)
            // A seeded input (Candle's randn draws from an unseeded generator on the CPU, and the
            // error depends on the draw).
            let x = store.normal(&[4, 3, 128, 128], 1.0).unwrap();
            let full = model.forward_t(&x, true).unwrap();
            for p in half_precisions(dev) {
                let half = model
                    .forward_t(&x.to_dtype(p.dtype()).unwrap(), true)
                    .unwrap();
                assert_eq!(half.dtype(), p.dtype(), "{arch:?} {p}: computed in {p}");
                // bf16 keeps 8 significant bits (relative rounding 2^-9 per value), f16 11;
                // a few percent over ~20 layers is what half precision gives, 1 is a fault.
                let e = relative_error(&full, &half);
                assert!(e < 5e-2, "{arch:?} {p}: {e:e} from f32");
            }
        }
    });
}

#[test]
fn half_precision_steps_train_f32_master_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    on_device(|dev| {
        let mut losses = Vec::new();
        let halves = half_precisions(dev);
        for &p in std::iter::once(&Precision::F32).chain(&halves) {
            let s = Setup::new(common::tiny_config(&root, 1, 1), &|_| {}).unwrap();
            let mut opt = s.optimiser().unwrap();
            if p == Precision::F16 {
                opt.enable_loss_scaling();
            }
            let before: Vec<Tensor> = s
                .store
                .params()
                .iter()
                .map(|q| q.var.as_tensor().copy().unwrap())
                .collect();
            let batch = s.train.epoch(0).next().unwrap().unwrap();
            let h = s
                .cfg
                .schedule
                .plan(2, 2, 0.9)
                .unwrap()
                .hypers(0, 0, N_LR_GROUPS);
            let loss = train_step(s.model.as_ref(), &s.cfg.loss, &mut opt, &batch, &h, p).unwrap();
            assert!(loss.is_finite(), "{p}: loss {loss}");
            let mut moved = 0;
            for (q, b) in s.store.params().iter().zip(&before) {
                assert_eq!(q.var.dtype(), DType::F32, "{p}: {} stays f32", q.name);
                if relative_error(b, q.var.as_tensor()) > 0.0 {
                    moved += 1;
                }
            }
            assert!(
                moved > s.store.params().len() / 2,
                "{p}: only {moved} tensors moved"
            );
            if p == Precision::F16 {
                // 2^16 unless this first step overflowed and halved it.
                assert!(
                    [65536.0, 32768.0].contains(&opt.loss_scale()),
                    "{}",
                    opt.loss_scale()
                );
            }
            losses.push(loss);
        }
        for (p, l) in halves.iter().zip(&losses[1..]) {
            let e = (l - losses[0]).abs() / losses[0];
            assert!(e < 2e-2, "{p}: first loss {l} vs f32 {}", losses[0]);
        }
    });
}

#[test]
fn loss_scaling_skips_an_overflowing_step_and_halves_the_scale() {
    let dev = test_device();
    let store = {
        let mut st = ParamStore::new(&dev, 0);
        build(
            &ModelConfig {
                arch: Arch::Hrnet18,
                points: 2,
                input_size: 32,
                width: 0.0625,
                ..Default::default()
            },
            &mut st,
        )
        .unwrap();
        st
    };
    let mut opt = hmreg::learn::optim::Adam::new(&store, &Default::default()).unwrap();
    opt.enable_loss_scaling();
    let p = &store.params()[0];
    let before = p.var.as_tensor().copy().unwrap();
    // A gradient that overflowed: infinite.
    let loss = (p.var.as_tensor().sum_all().unwrap() * f64::INFINITY).unwrap();
    let grads = loss.backward().unwrap();
    let h = hmreg::learn::schedule::Hypers {
        lrs: vec![1e-2; N_LR_GROUPS],
        mom: 0.9,
        frozen: false,
    };
    let stats = opt.step(&grads, &h).unwrap();
    assert_eq!(stats.updated, 0);
    assert!(!stats.grad_norm.is_finite());
    assert_eq!(opt.loss_scale(), 32768.0);
    assert_eq!(
        relative_error(&before, p.var.as_tensor()),
        0.0,
        "nothing moved"
    );
    // A finite one is unscaled and applied.
    let grads = (p.var.as_tensor().sum_all().unwrap() * opt.loss_scale())
        .unwrap()
        .backward()
        .unwrap();
    let stats = opt.step(&grads, &h).unwrap();
    assert_eq!(stats.updated, 1);
    let n = p.var.elem_count() as f64;
    assert!(
        (stats.grad_norm - n.sqrt()).abs() < 1e-6 * n.sqrt(),
        "unscaled norm {}",
        stats.grad_norm
    );
}
