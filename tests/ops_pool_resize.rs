//! The custom ops against direct definitions, and their gradients against finite differences.
//!
//! Every test runs in rayon pools of 1, 2 and 7 threads (the kernels split their work by the
//! current pool's size), with NaN poisoning of the kernels' output buffers on, so that an element
//! a kernel fails to write fails the comparison whatever the build profile.

use candle_core::{DType, Tensor};
use hmreg::ops::{max_pool2d, pixel_shuffle, resize_bilinear, shuffle_cat, upsample_nearest};
use rand::{Rng, SeedableRng};

mod common;
use common::for_each_pool;

fn random(dims: &[usize], seed: u64, dtype: DType) -> Tensor {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = dims.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
    Tensor::from_vec(v, dims, &hmreg::device::test_device())
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Max pooling straight from the definition (padding never wins).
fn naive_pool(x: &Tensor, k: usize, s: usize, p: usize) -> Vec<f64> {
    let (n, c, h, w) = x.dims4().unwrap();
    let v = flat(x);
    let oh = (h + 2 * p - k) / s + 1;
    let ow = (w + 2 * p - k) / s + 1;
    let mut out = Vec::new();
    for i in 0..n * c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut m = f64::NEG_INFINITY;
                for ky in 0..k {
                    for kx in 0..k {
                        let (y, xx) = (
                            (oy * s + ky) as isize - p as isize,
                            (ox * s + kx) as isize - p as isize,
                        );
                        if y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < w {
                            m = m.max(v[i * h * w + y as usize * w + xx as usize]);
                        }
                    }
                }
                out.push(m);
            }
        }
    }
    out
}

#[test]
fn max_pool_matches_definition() {
    for_each_pool(|| {
        for (h, w, k, s, p) in [
            (8, 8, 3, 2, 1),
            (7, 9, 3, 2, 1),
            (6, 6, 2, 2, 0),
            (5, 5, 3, 1, 1),
        ] {
            // Shift negative so that a zero padding would wrongly win at the borders.
            let x = (random(&[2, 3, h, w], 1, DType::F32) - 3.0).unwrap();
            let y = max_pool2d(&x, k, s, p).unwrap();
            let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
            assert_eq!(y.dims(), &[2, 3, oh, ow]);
            assert_eq!(flat(&y), naive_pool(&x, k, s, p), "{h}x{w} k{k} s{s} p{p}");
        }
        // Candle's own pooling where it exists (no padding, kernel = stride).
        let x = random(&[1, 2, 8, 8], 2, DType::F32);
        assert_eq!(
            flat(&max_pool2d(&x, 2, 2, 0).unwrap()),
            flat(&x.max_pool2d(2).unwrap())
        );
        // Non-contiguous input.
        let xt = random(&[1, 2, 8, 6], 3, DType::F32)
            .transpose(2, 3)
            .unwrap();
        assert_eq!(
            flat(&max_pool2d(&xt, 3, 2, 1).unwrap()),
            naive_pool(&xt.contiguous().unwrap(), 3, 2, 1)
        );
        // ResNet's stem pool halves 128 to 64.
        assert_eq!(
            max_pool2d(&random(&[1, 1, 128, 128], 4, DType::F32), 3, 2, 1)
                .unwrap()
                .dims(),
            &[1, 1, 64, 64]
        );
        assert!(max_pool2d(&x, 3, 2, 2).is_err());
    });
}

#[test]
fn max_pool_ties_route_gradient_once() {
    for_each_pool(|| {
        let x = Tensor::ones((1, 1, 4, 4), DType::F32, &hmreg::device::test_device()).unwrap();
        let v = candle_core::Var::from_tensor(&x).unwrap();
        let y = max_pool2d(v.as_tensor(), 3, 2, 1).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        let gx = flat(g.get(v.as_tensor()).unwrap());
        // Four outputs, each sends exactly 1 to one input.
        assert_eq!(gx.iter().sum::<f64>(), 4.0);
        assert!(gx.iter().all(|&v| v == 0.0 || v.fract() == 0.0));
    });
}

/// Compares the autodiff gradient of `sum(w * f(x))` with central differences, in F64.
fn check_grad(f: impl Fn(&Tensor) -> Tensor, dims: &[usize], seed: u64, tol: f64) {
    let x = random(dims, seed, DType::F64);
    let y0 = f(&x);
    let w = random(y0.dims(), seed + 100, DType::F64);
    let loss = |x: &Tensor| -> f64 {
        (f(x) * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let var = candle_core::Var::from_tensor(&x).unwrap();
    let l = (f(var.as_tensor()) * &w).unwrap().sum_all().unwrap();
    let grads = l.backward().unwrap();
    let g = flat(grads.get(var.as_tensor()).expect("no gradient"));
    let xv = flat(&x);
    let eps = 1e-6;
    let mut checked = 0;
    for i in (0..xv.len()).step_by((xv.len() / 60).max(1)) {
        let mut plus = xv.clone();
        plus[i] += eps;
        let mut minus = xv.clone();
        minus[i] -= eps;
        let tp = Tensor::from_vec(plus, dims, &hmreg::device::test_device()).unwrap();
        let tm = Tensor::from_vec(minus, dims, &hmreg::device::test_device()).unwrap();
        let fd = (loss(&tp) - loss(&tm)) / (2.0 * eps);
        assert!(
            (fd - g[i]).abs() <= tol * (1.0 + fd.abs()),
            "index {i}: finite difference {fd} vs gradient {}",
            g[i]
        );
        checked += 1;
    }
    assert!(checked >= 30);
}

#[test]
fn max_pool_gradient_matches_finite_differences() {
    for_each_pool(|| {
        check_grad(|x| max_pool2d(x, 3, 2, 1).unwrap(), &[2, 2, 9, 8], 10, 1e-6);
        check_grad(|x| max_pool2d(x, 3, 1, 1).unwrap(), &[1, 2, 6, 6], 11, 1e-6);
    });
}

#[test]
fn resize_matches_pytorch_rule() {
    for_each_pool(|| {
        // PyTorch: F.interpolate([[0, 1, 2, 3]], size=8, mode='linear', align_corners=False).
        let x = Tensor::new(&[0f32, 1., 2., 3.], &hmreg::device::test_device())
            .unwrap()
            .reshape((1, 1, 1, 4))
            .unwrap();
        let y = resize_bilinear(&x, 1, 8).unwrap();
        let want = [0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0];
        for (a, b) in flat(&y).iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        // Halving averages neighbour pairs.
        let y = resize_bilinear(&x, 1, 2).unwrap();
        assert_eq!(flat(&y), vec![0.5, 2.5]);
        // Candle's forward-only implementation agrees, up and down, non-square.
        let x = random(&[2, 3, 8, 12], 5, DType::F32);
        for (oh, ow) in [(32, 32), (16, 24), (5, 7), (8, 3)] {
            let ours = flat(&resize_bilinear(&x, oh, ow).unwrap());
            let theirs = flat(&x.upsample_bilinear2d(oh, ow, false).unwrap());
            let err = ours
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-5, "{oh}x{ow}: max error {err}");
        }
        assert_eq!(flat(&resize_bilinear(&x, 8, 12).unwrap()), flat(&x));
    });
}

#[test]
fn resize_gradient_matches_finite_differences() {
    for_each_pool(|| {
        check_grad(
            |x| resize_bilinear(x, 16, 12).unwrap(),
            &[1, 2, 4, 6],
            20,
            1e-6,
        );
        check_grad(
            |x| resize_bilinear(x, 3, 5).unwrap(),
            &[1, 2, 8, 9],
            21,
            1e-6,
        );
    });
}

#[test]
fn pixel_shuffle_layout_and_gradient() {
    for_each_pool(|| {
        // Channel c*r^2 + i*r + j becomes sub-pixel (i, j) of channel c.
        let x = Tensor::arange(0f32, 2.0 * 4.0 * 2.0 * 3.0, &hmreg::device::test_device())
            .unwrap()
            .reshape((1, 8, 2, 3))
            .unwrap();
        let y = pixel_shuffle(&x, 2).unwrap();
        assert_eq!(y.dims(), &[1, 2, 4, 6]);
        let yv = flat(&y);
        let xv = flat(&x);
        for c in 0..2 {
            for oy in 0..4 {
                for ox in 0..6 {
                    let (i, j, h, w) = (oy % 2, ox % 2, oy / 2, ox / 2);
                    let src = ((c * 4 + i * 2 + j) * 2 + h) * 3 + w;
                    assert_eq!(yv[(c * 4 + oy) * 6 + ox], xv[src]);
                }
            }
        }
        assert!(pixel_shuffle(&x.narrow(1, 0, 6).unwrap(), 2).is_err());
        check_grad(|x| pixel_shuffle(x, 2).unwrap(), &[2, 8, 3, 2], 30, 1e-6);
    });
}

/// The f32 CPU kernel of `f` against its f64 path (tensor ops with Candle's autodiff): values and
/// the gradient of `Σ f(x)·w`.
fn check_f32_kernel_against_f64(f: impl Fn(&Tensor) -> Tensor, dims: &[usize], seed: u64) {
    let x64 = candle_core::Var::from_tensor(&random(dims, seed, DType::F64)).unwrap();
    let x32 =
        candle_core::Var::from_tensor(&x64.as_tensor().to_dtype(DType::F32).unwrap()).unwrap();
    let (y64, y32) = (f(x64.as_tensor()), f(x32.as_tensor()));
    assert_eq!(y64.dims(), y32.dims());
    let close = |a: &[f64], b: &[f64], what: &str| {
        for (i, (p, q)) in a.iter().zip(b).enumerate() {
            assert!(
                (p - q).abs() <= 1e-5 * (1.0 + p.abs()),
                "{what} {i}: {p} vs {q}"
            );
        }
    };
    close(&flat(&y64), &flat(&y32), "value");
    let w = random(y64.dims(), seed + 1, DType::F64);
    let grad = |y: &Tensor, x: &candle_core::Var| {
        let w = w.to_dtype(y.dtype()).unwrap();
        let g = (y * w).unwrap().sum_all().unwrap().backward().unwrap();
        flat(g.get(x.as_tensor()).expect("no gradient"))
    };
    close(&grad(&y64, &x64), &grad(&y32, &x32), "gradient");
}

#[test]
fn pixel_shuffle_f32_kernel_matches_reference_path() {
    for_each_pool(|| {
        check_f32_kernel_against_f64(|x| pixel_shuffle(x, 2).unwrap(), &[2, 12, 5, 3], 41);
        check_f32_kernel_against_f64(|x| pixel_shuffle(x, 3).unwrap(), &[1, 18, 2, 4], 42);
    });
}

#[test]
fn shuffle_cat_equals_shuffle_then_concatenation() {
    // Pure data movement: the kernel's values and both gradients equal, bit for bit, those of
    // pixel_shuffle followed by Candle's cat (the portable path), for several samples and
    // channel counts on both sides.
    for (n, c, r, h, w, c2) in [(2, 3, 2, 3, 4, 5), (3, 2, 3, 2, 2, 1)] {
        let x =
            candle_core::Var::from_tensor(&random(&[n, c * r * r, h, w], 51, DType::F32)).unwrap();
        let rest =
            candle_core::Var::from_tensor(&random(&[n, c2, h * r, w * r], 52, DType::F32)).unwrap();
        let wts = random(&[n, c + c2, h * r, w * r], 53, DType::F32);
        let run = || {
            let y = shuffle_cat(x.as_tensor(), r, rest.as_tensor()).unwrap();
            let g = (&y * &wts).unwrap().sum_all().unwrap().backward().unwrap();
            let dx = flat(g.get(x.as_tensor()).unwrap());
            (flat(&y), dx, flat(g.get(rest.as_tensor()).unwrap()))
        };
        let want = hmreg::ops::with_portable_ops(run);
        for_each_pool(|| assert!(run() == want, "n{n} c{c} r{r}"));
    }
    let x = random(&[1, 8, 3, 3], 54, DType::F32);
    let wrong = random(&[1, 2, 6, 5], 55, DType::F32);
    assert!(shuffle_cat(&x, 2, &wrong).is_err(), "sizes apart");
    assert!(shuffle_cat(&x.narrow(1, 0, 6).unwrap(), 2, &wrong).is_err());
}

#[test]
fn upsample_nearest_matches_candle_values_and_gradients() {
    for_each_pool(|| {
        for f in [1, 2, 4] {
            check_f32_kernel_against_f64(
                |x| upsample_nearest(x, f).unwrap(),
                &[2, 3, 4, 5],
                50 + f as u64,
            );
        }
        // Each value fills its f x f block.
        let x = random(&[1, 1, 2, 3], 7, DType::F32);
        let (xv, yv) = (flat(&x), flat(&upsample_nearest(&x, 2).unwrap()));
        for oy in 0..4 {
            for ox in 0..6 {
                assert_eq!(yv[oy * 6 + ox], xv[(oy / 2) * 3 + ox / 2]);
            }
        }
    });
}
