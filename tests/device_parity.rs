//! The device under test against the CPU kernels on the same seeded inputs: forward outputs and
//! parameter gradients of both architectures, the steps of one training epoch, and evaluation.
//!
//! The subject is the device named by `HMREG_TEST_DEVICE`. When that is the CPU (the default),
//! the subject runs with the portable path forced (`hmreg::ops::with_portable_ops`): the Candle
//! tensor-op path every op takes on a GPU, so the arithmetic a GPU will run is checked here too.
//!
//! Tolerances are norm-wise relative errors, `‖a − b‖ / ‖a‖`, for f32 on both sides. The two
//! sides sum the same products in different orders (im2col + gemm tiles against cuBLAS or
//! Candle's own convolution), which costs about `sqrt(K) · 2⁻²⁴` relative per layer for K-term
//! dot products (K ≤ 4,608 here, so ≈ 4e-6), growing with depth and through train-mode
//! BatchNorm over batches of two, which divides by small batch deviations. Measured on the CPU
//! pair (portable vs kernels): below 1e-5 for outputs and 1e-4 for gradients. The bounds leave
//! a GPU's reordering (and its fused multiply-adds) ten to a hundred times that room while still
//! catching any real fault, which shows as an error of order 1: outputs and the eval-mode pass
//! 1e-3, gradients 1e-2 (they pass through the BatchNorm backward twice), the per-step losses of
//! one epoch 1e-3 (each step's update moves the weights by ~lr, so the sides drift apart only
//! slowly over two steps), and the metrics of a soft-argmax decoding 1e-3 (argmax can jump a
//! pixel between two nearly equal values of the untrained maps, so a continuous decoder is used).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor};
use hmreg::codec::Decoder;
use hmreg::learn::optim::N_LR_GROUPS;
use hmreg::models::{build, Arch, ModelConfig, ParamStore};
use hmreg::train::step::train_step;
use hmreg::train::validate::validate;
use hmreg::train::Setup;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Runs `f` on the device under test (see the module comment).
fn on_subject<R>(f: impl FnOnce(&Device) -> R) -> R {
    common::on_device_path(f)
}

/// Runs `f` on the reference: the CPU with its kernels.
fn on_reference<R>(f: impl FnOnce(&Device) -> R) -> R {
    f(&Device::Cpu)
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// `‖a − b‖ / ‖a‖` (absolute when `a` is zero).
fn relative_error(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diff: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    if norm > 0.0 {
        diff / norm
    } else {
        diff
    }
}

fn seeded(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// `f`'s output and its gradients with respect to every input, for inputs `xs` made on `dev`,
/// weighting the output by a seeded tensor.
fn op_pass(
    dev: &Device,
    xs: &[Vec<f32>],
    dims: &[usize],
    f: &dyn Fn(&[Tensor]) -> Tensor,
) -> Vec<Vec<f32>> {
    let vars: Vec<candle_core::Var> = xs
        .iter()
        .map(|v| {
            candle_core::Var::from_tensor(&Tensor::from_vec(v.clone(), dims, dev).unwrap()).unwrap()
        })
        .collect();
    let inputs: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&inputs);
    let w = Tensor::from_vec(seeded(y.elem_count(), 99), y.dims(), dev).unwrap();
    let grads = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
    let mut out = vec![values(&y)];
    out.extend(
        inputs
            .iter()
            .map(|x| values(grads.get(x).expect("an input without gradient"))),
    );
    out
}

/// A 6 -> 6 channel 3x3 kernel cut from the second input (so it gets a gradient too).
fn kernel(x: &Tensor) -> Tensor {
    x.narrow(0, 0, 1)
        .unwrap()
        .reshape((6, 7, 3, 3))
        .unwrap()
        .narrow(1, 0, 6)
        .unwrap()
}

#[test]
fn every_op_matches_the_cpu_kernels_in_values_and_gradients() {
    use hmreg::ops::*;
    // ReLU'd inputs: exact zeros tie in the pooling windows, as they do after a stem's ReLU.
    let relu_d = |seed| {
        seeded(2 * 6 * 9 * 7, seed)
            .iter()
            .map(|v| v.max(0.0))
            .collect::<Vec<_>>()
    };
    let dims = [2, 6, 9, 7];
    type Op = Box<dyn Fn(&[Tensor]) -> Tensor>;
    // Max pooling selects and scatters: bit-exact on any device, ties included. Upsampling's
    // gradient sums each block in another order (values exact).
    let mut ops: Vec<(String, usize, f64, Op)> = [(3, 2, 1), (2, 2, 0), (3, 1, 1), (3, 3, 0)]
        .into_iter()
        .map(|(k, st, p)| {
            let op: Op = Box::new(move |x| max_pool2d(&x[0], k, st, p).unwrap());
            (format!("max_pool {k}x{k}/{st} pad {p}"), 1, 0.0, op)
        })
        .collect();
    let others: Vec<(&str, usize, f64, Op)> = vec![
        (
            "upsample x2",
            1,
            1e-6,
            Box::new(|x| upsample_nearest(&x[0], 2).unwrap()),
        ),
        (
            "upsample x4",
            1,
            1e-6,
            Box::new(|x| upsample_nearest(&x[0], 4).unwrap()),
        ),
        (
            "pixel_shuffle 3",
            1,
            0.0,
            Box::new(|x| pixel_shuffle(&x[0].repeat((1, 3, 1, 1)).unwrap(), 3).unwrap()),
        ),
        ("relu", 1, 0.0, Box::new(|x| relu(&x[0]).unwrap())),
        (
            "add_relu",
            2,
            1e-7,
            Box::new(|x| add_relu(&x[0], &x[1]).unwrap()),
        ),
        // Sums of products in another order.
        (
            "conv 3x3 pad 1 + relu",
            2,
            1e-5,
            Box::new(|x| conv2d_relu(&x[0], &kernel(&x[1]), None, 1, 1).unwrap()),
        ),
        (
            "conv 3x3 stride 2",
            2,
            1e-5,
            Box::new(|x| conv2d(&x[0], &kernel(&x[1]), None, 2, 1, 1).unwrap()),
        ),
        (
            "batch_norm train + relu",
            1,
            1e-5,
            Box::new(|x| {
                let c = x[0].dim(1).unwrap();
                let dev = x[0].device();
                let gamma = Tensor::from_vec(seeded(c, 5), c, dev).unwrap();
                let beta = Tensor::from_vec(seeded(c, 6), c, dev).unwrap();
                let rm = candle_core::Var::zeros(c, candle_core::DType::F32, dev).unwrap();
                let rv = candle_core::Var::ones(c, candle_core::DType::F32, dev).unwrap();
                let p = BatchNormParams {
                    weight: &gamma,
                    bias: &beta,
                    running_mean: &rm,
                    running_var: &rv,
                };
                let cfg = BatchNormConfig {
                    train: true,
                    momentum: 0.1,
                    eps: 1e-5,
                };
                batch_norm_relu(&x[0], p, cfg).unwrap()
            }),
        ),
    ];
    ops.extend(
        others
            .into_iter()
            .map(|(n, i, t, f)| (n.to_string(), i, t, f)),
    );
    for (name, inputs, tol, f) in &ops {
        let xs: Vec<Vec<f32>> = (0..*inputs as u64).map(relu_d).collect();
        let reference = on_reference(|d| op_pass(d, &xs, &dims, f.as_ref()));
        let subject = on_subject(|d| op_pass(d, &xs, &dims, f.as_ref()));
        for (i, (a, b)) in reference.iter().zip(&subject).enumerate() {
            let what = if i == 0 {
                "value".to_string()
            } else {
                format!("gradient {i}")
            };
            let e = relative_error(a, b);
            assert!(e <= *tol, "{name}: {what} differs by {e:e} (bound {tol:e})");
        }
    }
}

/// A thin model's outputs (train mode, then eval mode) and every parameter's gradient of a
/// seeded weighted sum of the train-mode outputs.
struct Pass {
    train_out: Vec<f32>,
    eval_out: Vec<f32>,
    grads: BTreeMap<String, Vec<f32>>,
}

fn run_model(arch: Arch, dev: &Device) -> Pass {
    let cfg = ModelConfig {
        arch,
        points: 5,
        input_size: 64,
        width: 0.125,
        ..Default::default()
    };
    let mut store = ParamStore::new(dev, 11);
    let model = build(&cfg, &mut store).unwrap();
    let dims = (2, 3, 64, 64);
    let x = Tensor::from_vec(seeded(2 * 3 * 64 * 64, 1), dims, dev).unwrap();
    let y = model.forward_t(&x, true).unwrap();
    let w = Tensor::from_vec(seeded(y.elem_count(), 2), y.dims(), dev).unwrap();
    let grads = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
    let grads = store
        .params()
        .iter()
        .filter_map(|p| {
            let g = grads.get(p.var.as_tensor())?;
            Some((p.name.clone(), values(g)))
        })
        .collect();
    let eval_out = values(&model.forward_t(&x, false).unwrap());
    Pass {
        train_out: values(&y),
        eval_out,
        grads,
    }
}

#[test]
fn forward_outputs_and_gradients_match_for_both_architectures() {
    for arch in [Arch::UnetResnet18, Arch::Hrnet18] {
        let reference = on_reference(|d| run_model(arch, d));
        let subject = on_subject(|d| run_model(arch, d));
        let train = relative_error(&reference.train_out, &subject.train_out);
        let eval = relative_error(&reference.eval_out, &subject.eval_out);
        assert!(
            train < 1e-3,
            "{arch:?} train-mode output differs by {train:e}"
        );
        assert!(eval < 1e-3, "{arch:?} eval-mode output differs by {eval:e}");
        assert_eq!(
            reference.grads.keys().collect::<Vec<_>>(),
            subject.grads.keys().collect::<Vec<_>>(),
            "{arch:?}: the same parameters get gradients"
        );
        assert!(
            reference.grads.len() > 20,
            "{arch:?}: gradients reach the whole model"
        );
        let mut worst = (0f64, String::new());
        for (name, g) in &reference.grads {
            let e = relative_error(g, &subject.grads[name]);
            if e > worst.0 {
                worst = (e, name.clone());
            }
        }
        assert!(
            worst.0 < 1e-2,
            "{arch:?}: gradient of {} differs by {:e}",
            worst.1,
            worst.0
        );
        eprintln!(
            "{arch:?}: output {train:.1e} (eval {eval:.1e}), worst gradient {:.1e} ({})",
            worst.0, worst.1
        );
    }
}

/// What one epoch of the tiny run gives: the loss of every step, the trained weights, and the
/// validation loss and metrics of the weights in `evaluate` (the trained ones when `None`).
struct Epoch {
    losses: Vec<f64>,
    weights: HashMap<String, Tensor>,
    val_loss: f64,
    metrics: BTreeMap<String, f64>,
}

fn one_epoch(root: &Path, dev: &Device, evaluate: Option<&HashMap<String, Tensor>>) -> Epoch {
    let mut cfg = common::tiny_config(root, 3, 5);
    cfg.device = if dev.is_cpu() {
        hmreg::device::DeviceSpec::Cpu
    } else {
        hmreg::device::test_device_spec()
    };
    cfg.metrics.decoder = Decoder::SoftArgmax { temperature: 1.0 };
    let s = Setup::new(cfg, &|_| {}).unwrap();
    let cfg = &s.cfg;
    let mut opt = s.optimiser().unwrap();
    let spe = s.train.batches_per_epoch();
    let plan = cfg.schedule.plan(cfg.epochs, spe, cfg.optim.beta1).unwrap();
    let mut losses = Vec::new();
    for (b, batch) in s.train.epoch(0).enumerate() {
        let h = plan.hypers(0, b, N_LR_GROUPS);
        let batch = batch.unwrap();
        let model = s.model.as_ref();
        losses.push(train_step(model, &cfg.loss, &mut opt, &batch, &h, cfg.precision).unwrap());
    }
    let weights: HashMap<String, Tensor> = s.store.named_tensors().into_iter().collect();
    if let Some(w) = evaluate {
        s.store.load_tensors(w, Path::new("reference")).unwrap();
    }
    let (val_loss, report) = validate(s.model.as_ref(), &s.val, cfg).unwrap();
    let metrics = serde_json::to_value(&report).unwrap();
    let metrics = metrics
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
        .collect();
    Epoch {
        losses,
        weights,
        val_loss,
        metrics,
    }
}

#[test]
fn one_training_epoch_matches_step_by_step_and_evaluation_matches() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let reference = on_reference(|d| one_epoch(&root, d, None));
    // The subject trains from the same seed (its step losses are compared), then evaluates the
    // reference's trained weights: Adam's first steps are nearly sign(gradient), so gradients
    // near zero that differ in the last bits move weights apart by up to 2 lr, and comparing
    // the evaluations of two trainings would measure that rather than the device's arithmetic.
    let subject = on_subject(|d| one_epoch(&root, d, Some(&reference.weights)));
    assert_eq!(
        reference.losses.len(),
        2,
        "8 training faces in batches of 4"
    );
    for (i, (a, b)) in reference.losses.iter().zip(&subject.losses).enumerate() {
        let e = (a - b).abs() / a.abs();
        assert!(e < 1e-3, "step {i}: loss {a} vs {b} ({e:e})");
    }
    let (a, b) = (reference.val_loss, subject.val_loss);
    assert!((a - b).abs() / a < 1e-3, "validation loss {a} vs {b}");
    let (ra, sa) = (&reference.metrics, &subject.metrics);
    assert!(ra.contains_key("nmae") && ra.contains_key("nme"), "{ra:?}");
    assert_eq!(ra.keys().collect::<Vec<_>>(), sa.keys().collect::<Vec<_>>());
    for (k, a) in ra {
        let b = sa[k];
        let bound = 1e-3 * a.abs().max(1e-3);
        assert!((a - b).abs() <= bound, "metric {k}: {a} vs {b}");
    }
    eprintln!("losses {:?} vs {:?}", reference.losses, subject.losses);
    eprintln!("validation loss {a} vs {b}; metrics {ra:?} vs {sa:?}");
}

#[test]
fn argmax_decoding_on_the_device_matches_the_cpu() {
    // Maps with exact ties (values quantised to a few levels): the first maximum wins on both.
    let (n, c, h, w) = (3, 4, 9, 11);
    let v: Vec<f32> = seeded(n * c * h * w, 21)
        .iter()
        .map(|x| (x * 3.0).round())
        .collect();
    let decode = |dev: &Device| {
        let maps = Tensor::from_vec(v.clone(), (n, c, h, w), dev).unwrap();
        hmreg::codec::decode(&maps, &Decoder::Argmax).unwrap()
    };
    let reference = on_reference(decode);
    let subject = on_subject(decode);
    assert_eq!(reference, subject);
    assert!(
        reference.confidence.iter().all(|&m| m == 3.0),
        "every map reaches the top level"
    );
}
