//! The custom CPU ops against Candle's reference ops: values and gradients.
//!
//! Our side of every comparison runs in rayon pools of 1, 2 and 7 threads (the kernels split
//! their work by the current pool's size: serially, in a few tasks, in more tasks than samples),
//! with NaN poisoning of the kernels' output buffers on, so that an element a kernel fails to
//! write fails the comparison whatever the build profile. The direct kernel runs at every vector
//! width the machine has (AVX2 and, where present, AVX-512).

use candle_core::{Tensor, Var};
use hmreg::ops::{self, simd, BatchNormConfig, BatchNormParams, ConvAlgo, VectorWidth};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod common;
use common::for_each_pool;

/// A description of the current pool and vector width, for failure messages.
fn pool() -> String {
    format!(
        "{} threads, {:?}",
        rayon::current_num_threads(),
        ops::simd::current()
    )
}

/// Runs `f` in every pool of [`for_each_pool`] with each convolution algorithm forced in turn
/// (where it supports the geometry; elsewhere the usual choice runs), the direct kernel at each
/// vector width the machine runs.
fn for_each_pool_and_algo(f: impl Fn(ConvAlgo) + Sync) {
    for_each_pool(|| {
        for algo in [ConvAlgo::Gemm, ConvAlgo::Winograd] {
            ops::with_conv_algo(algo, || f(algo));
        }
        for width in ops::simd::available() {
            ops::with_vector_width(width, || {
                ops::with_conv_algo(ConvAlgo::Direct, || f(ConvAlgo::Direct))
            });
        }
    });
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn rand_tensor(rng: &mut ChaCha8Rng, dims: &[usize]) -> Tensor {
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_vec(v, dims, &hmreg::device::test_device()).unwrap()
}

/// The largest absolute difference, NaN if any element of either side is NaN.
fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    flat(a)
        .iter()
        .zip(flat(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, |m: f32, d| {
            if m.is_nan() || d.is_nan() {
                f32::NAN
            } else {
                m.max(d)
            }
        })
}

fn max_abs(a: &Tensor) -> f32 {
    a.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// One convolution to test: input `x` `(N, C_in, H, W)`, `c_out` kernels of `k` `(KH, KW)`.
#[derive(Clone, Copy, Debug)]
struct ConvCase {
    x: [usize; 4],
    c_out: usize,
    k: (usize, usize),
    stride: usize,
    pad: usize,
}

/// Direct-loop convolution in f64 (definition), with its gradients under `L = Σ y·weights`:
/// returns `(y, dx, dw)` as flat vectors.
fn naive_conv(x: &[f32], wt: &[f32], gw: &[f32], case: ConvCase) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let ConvCase {
        x: [n, c_in, h, w],
        c_out,
        k: (kh, kw),
        stride,
        pad,
    } = case;
    let oh = (h + 2 * pad - kh) / stride + 1;
    let ow = (w + 2 * pad - kw) / stride + 1;
    let mut y = vec![0f64; n * c_out * oh * ow];
    let mut dx = vec![0f64; x.len()];
    let mut dw = vec![0f64; wt.len()];
    for b in 0..n {
        for co in 0..c_out {
            for i in 0..oh {
                for j in 0..ow {
                    let yi = ((b * c_out + co) * oh + i) * ow + j;
                    for ci in 0..c_in {
                        for a in 0..kh {
                            for e in 0..kw {
                                let ih = (i * stride + a) as isize - pad as isize;
                                let iw = (j * stride + e) as isize - pad as isize;
                                if ih < 0 || iw < 0 || ih >= h as isize || iw >= w as isize {
                                    continue;
                                }
                                let xi = ((b * c_in + ci) * h + ih as usize) * w + iw as usize;
                                let wi = ((co * c_in + ci) * kh + a) * kw + e;
                                y[yi] += x[xi] as f64 * wt[wi] as f64;
                                dx[xi] += gw[yi] as f64 * wt[wi] as f64;
                                dw[wi] += gw[yi] as f64 * x[xi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    (y, dx, dw)
}

fn assert_close(ours: &Tensor, want: &[f64], what: &str) {
    let got: Vec<f32> = ours.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (*a as f64 - b).abs() <= 1e-4 * scale,
            "{what}: element {i}: {a} vs {b} (scale {scale})"
        );
    }
}

/// Compares value, input gradient and weight gradient of `ops::conv2d` with a direct-loop
/// definition, and with Candle's conv2d (values always; gradients where Candle's own backward
/// handles the shape: it fails when the transposed conv needs output padding).
fn check_conv(case: ConvCase) {
    let ConvCase {
        x: [n, c_in, h, w],
        c_out,
        k,
        stride,
        pad,
    } = case;
    let mut rng = ChaCha8Rng::seed_from_u64((n * 1000 + c_in * 100 + h + stride * 7 + pad) as u64);
    let x = Var::from_tensor(&rand_tensor(&mut rng, &[n, c_in, h, w])).unwrap();
    let wt = Var::from_tensor(&rand_tensor(&mut rng, &[c_out, c_in, k.0, k.1])).unwrap();
    let refr = x
        .as_tensor()
        .conv2d(wt.as_tensor(), pad, stride, 1, 1)
        .unwrap();
    let weights = rand_tensor(&mut rng, refr.dims());
    let (y, dx, dw) = naive_conv(
        &flat(x.as_tensor()),
        &flat(wt.as_tensor()),
        &flat(&weights),
        case,
    );
    let g_ref = (&refr * &weights)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .ok();
    for_each_pool_and_algo(|algo| {
        let ctx = format!("{case:?}, {algo:?} on {}", pool());
        let ours = ops::conv2d(x.as_tensor(), wt.as_tensor(), None, stride, pad, 1).unwrap();
        let scale = max_abs(&refr).max(1.0);
        assert!(max_abs_diff(&ours, &refr) <= 1e-4 * scale, "forward {ctx}");
        let g_ours = (&ours * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert_close(&ours, &y, &format!("y {ctx}"));
        assert_close(
            g_ours.get(x.as_tensor()).unwrap(),
            &dx,
            &format!("dx {ctx}"),
        );
        assert_close(
            g_ours.get(wt.as_tensor()).unwrap(),
            &dw,
            &format!("dw {ctx}"),
        );
        if let Some(g_ref) = &g_ref {
            for (name, v) in [("dx", &x), ("dw", &wt)] {
                let a = g_ours.get(v.as_tensor()).unwrap();
                let b = g_ref.get(v.as_tensor()).unwrap();
                let scale = max_abs(b).max(1.0);
                let d = max_abs_diff(a, b);
                assert!(
                    d <= 1e-4 * scale,
                    "{name} vs candle {ctx}: max diff {d} (scale {scale})"
                );
            }
        }
    });
}

#[test]
fn conv_matches_candle_3x3_same() {
    check_conv(ConvCase {
        x: [2, 5, 9, 11],
        c_out: 7,
        k: (3, 3),
        stride: 1,
        pad: 1,
    });
}

#[test]
fn conv_matches_candle_strided_and_padded() {
    check_conv(ConvCase {
        x: [3, 4, 13, 10],
        c_out: 6,
        k: (3, 3),
        stride: 2,
        pad: 1,
    });
    check_conv(ConvCase {
        x: [2, 3, 20, 17],
        c_out: 8,
        k: (7, 7),
        stride: 2,
        pad: 3,
    });
    check_conv(ConvCase {
        x: [1, 3, 8, 8],
        c_out: 4,
        k: (3, 3),
        stride: 2,
        pad: 0,
    });
}

#[test]
fn conv_matches_candle_pointwise_and_downsample() {
    check_conv(ConvCase {
        x: [4, 6, 7, 5],
        c_out: 9,
        k: (1, 1),
        stride: 1,
        pad: 0,
    });
    check_conv(ConvCase {
        x: [2, 6, 9, 9],
        c_out: 3,
        k: (1, 1),
        stride: 2,
        pad: 0,
    });
    check_conv(ConvCase {
        x: [1, 6, 6, 6],
        c_out: 3,
        k: (1, 1),
        stride: 1,
        pad: 1,
    });
}

#[test]
fn conv_matches_candle_rect_kernel_and_big_padding() {
    check_conv(ConvCase {
        x: [2, 2, 6, 7],
        c_out: 3,
        k: (3, 5),
        stride: 1,
        pad: 2,
    });
    check_conv(ConvCase {
        x: [2, 2, 5, 5],
        c_out: 3,
        k: (3, 3),
        stride: 3,
        pad: 2,
    });
}

#[test]
fn conv_stride_one_input_gradient_for_every_padding() {
    // The flipped-kernel input gradient pads by K − 1 − P: cover P = 0, 1, 2 and a 5x5 kernel.
    for pad in 0..3 {
        check_conv(ConvCase {
            x: [2, 3, 7, 9],
            c_out: 4,
            k: (3, 3),
            stride: 1,
            pad,
        });
    }
    check_conv(ConvCase {
        x: [2, 4, 9, 8],
        c_out: 5,
        k: (5, 5),
        stride: 1,
        pad: 2,
    });
}

#[test]
fn direct_and_winograd_edge_geometries() {
    // Rows of 8 to 15 outputs (the direct kernel pairs rows; an odd row count leaves one),
    // exactly 8, and wide rows with a tail after 16 + 8 columns (an overlapping last vector, which
    // the direct weight gradient masks); output channels that fill no whole register block (6
    // forward, 4 weight gradient); odd output sizes (Winograd's 2x2 tiles hang over the edges).
    for (x, c_out, pad) in [
        ([2, 5, 7, 12], 7, 1),
        ([1, 4, 9, 8], 13, 1),
        ([2, 3, 5, 27], 6, 1),
        ([2, 6, 11, 13], 5, 0),
        ([3, 2, 6, 10], 9, 2),
        // AVX-512: rows of 16 to 31 outputs with a tail, and rows of 4 vectors and more.
        ([2, 4, 5, 23], 7, 1),
        ([1, 3, 4, 70], 8, 1),
    ] {
        check_conv(ConvCase {
            x,
            c_out,
            k: (3, 3),
            stride: 1,
            pad,
        });
    }
}

#[test]
fn direct_stride_two_edge_geometries() {
    // Stride 2 reads rows split into even and odd columns: odd and even widths, rows of 8 to 15
    // outputs (AVX2 tiles at both widths), of 16 and more with and without a tail, kernels of
    // 3, 5 and 7 columns (the stems' 7x7), padding 0 to 3.
    for (x, c_out, k, pad) in [
        ([2, 3, 9, 17], 7, 3, 1),
        ([1, 4, 6, 40], 13, 3, 1),
        ([3, 2, 5, 35], 6, 3, 0),
        ([2, 3, 7, 70], 9, 5, 2),
        ([1, 3, 9, 31], 5, 7, 3),
        ([2, 5, 8, 64], 4, 3, 1),
    ] {
        let g = hmreg::ops::conv_cpu::ConvGeom {
            n: x[0],
            c_in: x[1],
            h: x[2],
            w: x[3],
            c_out,
            kh: k,
            kw: k,
            stride: 2,
            padding: pad,
        };
        // Forcing the direct kernel runs it, not the usual choice (and its weight gradient too
        // for three kernel columns).
        assert!(hmreg::ops::conv_direct::supports(&g), "{g:?}");
        assert_eq!(hmreg::ops::conv_direct::supports_weight_grad(&g), k == 3);
        check_conv(ConvCase {
            x,
            c_out,
            k: (k, k),
            stride: 2,
            pad,
        });
    }
}

#[test]
fn the_usual_choice_picks_each_algorithm_on_model_layers() {
    use hmreg::ops::conv_algo;
    use hmreg::ops::conv_cpu::ConvGeom;
    let layer = |c_in, hw, c_out, k: usize, stride| ConvGeom {
        n: 8,
        c_in,
        h: hw,
        w: hw,
        c_out,
        kh: k,
        kw: k,
        stride,
        padding: k / 2,
    };
    // UNet's decoder and ResNet's wide layers: Winograd; pointwise and very wide-input layers:
    // im2col + gemm, at every vector width.
    for width in [VectorWidth::Avx2, VectorWidth::Avx512] {
        simd::with_vector_width(width, || {
            let algo = |l| conv_algo::forward(&l);
            assert_eq!(algo(layer(99, 256, 99, 3, 1)), ConvAlgo::Winograd);
            assert_eq!(algo(layer(256, 64, 256, 3, 1)), ConvAlgo::Winograd);
            assert_eq!(algo(layer(64, 64, 256, 1, 1)), ConvAlgo::Gemm);
            assert_eq!(algo(layer(512, 8, 512, 3, 1)), ConvAlgo::Gemm);
        });
    }
    // HRNet's narrow branches: direct, when the CPU has the kernels.
    let direct = |yes: bool| match hmreg::ops::conv_direct::available() && yes {
        true => ConvAlgo::Direct,
        false => ConvAlgo::Gemm,
    };
    let wide = simd::widest() == Some(VectorWidth::Avx512);
    simd::with_vector_width(VectorWidth::Avx2, || {
        // AVX2 tiles: stride 1 and K ≤ 1728, rows of 8 and more.
        assert_eq!(conv_algo::forward(&layer(18, 64, 18, 3, 1)), direct(true));
        assert_eq!(conv_algo::forward(&layer(144, 8, 144, 3, 1)), direct(true));
        assert_eq!(conv_algo::forward(&layer(18, 64, 36, 3, 2)), direct(false));
        assert_eq!(conv_algo::forward(&layer(256, 64, 18, 3, 1)), direct(false));
    });
    // At the machine's width: AVX-512 tiles also take stride 2 and K ≤ 2304, not 8-wide rows.
    assert_eq!(conv_algo::forward(&layer(36, 32, 36, 3, 1)), direct(true));
    assert_eq!(conv_algo::forward(&layer(144, 8, 144, 3, 1)), direct(!wide));
    assert_eq!(conv_algo::forward(&layer(18, 64, 36, 3, 2)), direct(wide));
    assert_eq!(conv_algo::forward(&layer(3, 256, 64, 7, 2)), direct(wide));
    assert_eq!(conv_algo::forward(&layer(256, 64, 18, 3, 1)), direct(wide));
}

#[test]
fn fused_conv_bias_relu_matches_candle_values_and_gradients() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for (n, stride, k, pad) in [(3, 1, 3, 1), (2, 2, 3, 1), (2, 1, 1, 0)] {
        let x = Var::from_tensor(&rand_tensor(&mut rng, &[n, 5, 9, 9])).unwrap();
        let wt = Var::from_tensor(&rand_tensor(&mut rng, &[6, 5, k, k])).unwrap();
        let b = Var::from_tensor(&rand_tensor(&mut rng, &[6])).unwrap();
        let refr = x
            .as_tensor()
            .conv2d(wt.as_tensor(), pad, stride, 1, 1)
            .unwrap()
            .broadcast_add(&b.as_tensor().reshape((1, 6, 1, 1)).unwrap())
            .unwrap()
            .relu()
            .unwrap();
        let weights = rand_tensor(&mut rng, refr.dims());
        let grads = |y: &Tensor| {
            (y * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
        };
        let g_ref = grads(&refr);
        for_each_pool_and_algo(|algo| {
            let ours = ops::conv2d_relu(
                x.as_tensor(),
                wt.as_tensor(),
                Some(b.as_tensor()),
                stride,
                pad,
            )
            .unwrap();
            let ctx = format!("n{n} s{stride} k{k} p{pad}, {algo:?} on {}", pool());
            assert!(max_abs_diff(&ours, &refr) < 1e-4, "forward {ctx}");
            // Both sides of the ReLU occur, so the mask is exercised.
            let vals = flat(&ours);
            assert!(vals.contains(&0.0) && vals.iter().any(|&v| v > 0.0));
            let g_ours = grads(&ours);
            for (name, v) in [("dx", &x), ("dw", &wt), ("db", &b)] {
                let a = g_ours.get(v.as_tensor()).unwrap();
                let r = g_ref.get(v.as_tensor()).unwrap();
                let d = max_abs_diff(a, r);
                assert!(
                    d <= 1e-4 * max_abs(r).max(1.0),
                    "{name} {ctx}: max diff {d}"
                );
            }
        });
    }
}

#[test]
fn conv_tiles_large_images_correctly() {
    // K·OW large enough that one im2col tile holds only part of the output rows.
    check_conv(ConvCase {
        x: [1, 64, 140, 140],
        c_out: 2,
        k: (3, 3),
        stride: 1,
        pad: 1,
    });
}

#[test]
fn conv_batch_larger_than_the_pool() {
    // Nine samples: in every pool the forward pass runs tiles in parallel and the backward pass
    // splits the batch into chunks, the last one shorter (5 + 4 on 2 threads, 4 x 2 + 1 on 7).
    // Strided (col2im), 1x1 (gemm straight into the input gradient), stride 1 (flipped conv).
    check_conv(ConvCase {
        x: [9, 3, 7, 6],
        c_out: 4,
        k: (3, 3),
        stride: 2,
        pad: 1,
    });
    check_conv(ConvCase {
        x: [9, 5, 4, 6],
        c_out: 3,
        k: (1, 1),
        stride: 1,
        pad: 0,
    });
    check_conv(ConvCase {
        x: [9, 2, 5, 5],
        c_out: 3,
        k: (3, 3),
        stride: 1,
        pad: 1,
    });
}

#[test]
fn conv_skips_gradient_of_untracked_input_and_adds_bias() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = rand_tensor(&mut rng, &[2, 3, 8, 8]);
    let wt = Var::from_tensor(&rand_tensor(&mut rng, &[4, 3, 3, 3])).unwrap();
    let b = Var::from_tensor(&rand_tensor(&mut rng, &[4])).unwrap();
    let r = x
        .conv2d(wt.as_tensor(), 1, 1, 1, 1)
        .unwrap()
        .broadcast_add(&b.as_tensor().reshape((1, 4, 1, 1)).unwrap())
        .unwrap();
    for_each_pool(|| {
        let y = ops::conv2d(&x, wt.as_tensor(), Some(b.as_tensor()), 1, 1, 1).unwrap();
        assert!(max_abs_diff(&y, &r) < 1e-4, "{}", pool());
        let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        assert!(g.get(&x).is_none(), "the image must get no gradient");
        assert!(g.get(wt.as_tensor()).is_some() && g.get(b.as_tensor()).is_some());
    });
}

/// Runs `f` (our batch norm or the reference) with fresh running statistics and returns the
/// output, the gradients of `Σ y·weights` for x, gamma, beta, and the updated running stats.
type BnFn = fn(&Tensor, BatchNormParams, BatchNormConfig) -> candle_core::Result<Tensor>;

fn run_bn(
    f: BnFn,
    x: &Var,
    gamma: &Var,
    beta: &Var,
    gw: &Tensor,
    train: bool,
    relu: bool,
) -> Vec<Tensor> {
    let c = x.dim(1).unwrap();
    let rm = Var::from_tensor(
        &Tensor::from_vec(
            (0..c).map(|i| i as f32 * 0.1).collect::<Vec<_>>(),
            c,
            &hmreg::device::test_device(),
        )
        .unwrap(),
    )
    .unwrap();
    let rv = Var::from_tensor(
        &Tensor::from_vec(
            (0..c).map(|i| 1.0 + i as f32 * 0.2).collect::<Vec<_>>(),
            c,
            &hmreg::device::test_device(),
        )
        .unwrap(),
    )
    .unwrap();
    let params = BatchNormParams {
        weight: gamma.as_tensor(),
        bias: beta.as_tensor(),
        running_mean: &rm,
        running_var: &rv,
    };
    let cfg = BatchNormConfig {
        train,
        momentum: 0.1,
        eps: 1e-5,
    };
    let mut y = f(x.as_tensor(), params, cfg).unwrap();
    if relu {
        y = y.relu().unwrap();
    }
    let g = (&y * gw).unwrap().sum_all().unwrap().backward().unwrap();
    vec![
        y,
        g.get(x.as_tensor()).unwrap().clone(),
        g.get(gamma.as_tensor()).unwrap().clone(),
        g.get(beta.as_tensor()).unwrap().clone(),
        rm.as_tensor().clone(),
        rv.as_tensor().clone(),
    ]
}

fn check_bn(dims: [usize; 4], train: bool, relu: bool, offset: f32) {
    let mut rng = ChaCha8Rng::seed_from_u64(dims.iter().sum::<usize>() as u64 + train as u64);
    let x = Var::from_tensor(
        &rand_tensor(&mut rng, &dims)
            .affine(3.0, offset as f64)
            .unwrap(),
    )
    .unwrap();
    let c = dims[1];
    let gamma = Var::from_tensor(&(rand_tensor(&mut rng, &[c]) + 1.0).unwrap()).unwrap();
    let beta = Var::from_tensor(&rand_tensor(&mut rng, &[c])).unwrap();
    let gw = rand_tensor(&mut rng, &dims);
    let ours_fn: BnFn = if relu {
        ops::batch_norm_relu
    } else {
        ops::batch_norm
    };
    let refr = run_bn(
        ops::batchnorm::batch_norm_reference,
        &x,
        &gamma,
        &beta,
        &gw,
        train,
        relu,
    );
    for_each_pool(|| {
        let ours = run_bn(ours_fn, &x, &gamma, &beta, &gw, train, false);
        for (name, (a, b)) in ["y", "dx", "dgamma", "dbeta", "running_mean", "running_var"]
            .iter()
            .zip(ours.iter().zip(&refr))
        {
            let scale = max_abs(b).max(1.0);
            let d = max_abs_diff(a, b);
            assert!(
                d <= 2e-4 * scale,
                "{name} {dims:?} train={train} relu={relu} on {}: diff {d} (scale {scale})",
                pool()
            );
        }
    });
}

#[test]
fn batch_norm_train_matches_reference() {
    check_bn([4, 3, 5, 6], true, false, 0.0);
    check_bn([2, 5, 9, 7], true, false, 50.0);
    check_bn([1, 2, 3, 3], true, false, -2.0);
}

#[test]
fn batch_norm_relu_train_matches_reference() {
    check_bn([3, 4, 6, 5], true, true, 0.5);
}

#[test]
fn batch_norm_inference_matches_reference() {
    check_bn([2, 3, 4, 4], false, false, 1.0);
    check_bn([2, 3, 4, 4], false, true, 0.0);
}

#[test]
fn batch_norm_large_planes_use_parallel_path() {
    check_bn([2, 3, 64, 80], true, true, 0.0);
}

#[test]
fn allocator_tuning_and_thread_count_checks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    assert!(
        ops::alloc::tune_allocator(),
        "glibc must accept the mallopt settings"
    );
    assert!(ops::threads::set_threads(0).is_err());
    // The pool already exists (the tests above used it): asking for its own size is accepted.
    let n = ops::threads::num_threads();
    assert!(ops::threads::set_threads(n).is_ok());
}

#[test]
fn relu_and_add_relu_match_candle() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    // Larger than one parallel chunk, not a multiple of it.
    let dims = [3, 5, 97, 101];
    let a = Var::from_tensor(&rand_tensor(&mut rng, &dims)).unwrap();
    let b = Var::from_tensor(&rand_tensor(&mut rng, &dims)).unwrap();
    let gw = rand_tensor(&mut rng, &dims);
    let grads = |y: Tensor| {
        let g = (&y * &gw).unwrap().sum_all().unwrap().backward().unwrap();
        let ga = g.get(a.as_tensor()).unwrap().clone();
        let gb = g.get(b.as_tensor()).cloned();
        (y, ga, gb)
    };
    let (y2, ga2, gb2) = grads((a.as_tensor() + b.as_tensor()).unwrap().relu().unwrap());
    let (y3, ga3, _) = grads(a.as_tensor().relu().unwrap());
    for_each_pool(|| {
        let (y1, ga1, gb1) = grads(ops::add_relu(a.as_tensor(), b.as_tensor()).unwrap());
        assert!(max_abs_diff(&y1, &y2) < 1e-6, "{}", pool());
        assert!(max_abs_diff(&ga1, &ga2) < 1e-6, "{}", pool());
        assert!(
            max_abs_diff(&gb1.unwrap(), gb2.as_ref().unwrap()) < 1e-6,
            "{}",
            pool()
        );
        let (y1, ga1, _) = grads(ops::relu(a.as_tensor()).unwrap());
        assert!(max_abs_diff(&y1, &y3) < 1e-6, "{}", pool());
        assert!(max_abs_diff(&ga1, &ga3) < 1e-6, "{}", pool());
        assert!(max_abs(&ga1) > 0.0 && max_abs(&y1) > 0.0);
    });
}

#[test]
fn batch_norm_folded_into_conv_matches_conv_then_batch_norm() {
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let c = 6;
    let per_channel = |f: &dyn Fn(usize) -> f32| {
        Tensor::from_vec(
            (0..c).map(f).collect::<Vec<f32>>(),
            c,
            &hmreg::device::test_device(),
        )
        .unwrap()
    };
    let gamma = per_channel(&|i| 0.5 + 0.3 * i as f32);
    let beta = per_channel(&|i| 0.2 - 0.1 * i as f32);
    let rm = Var::from_tensor(&per_channel(&|i| 0.1 * i as f32 - 0.2)).unwrap();
    let rv = Var::from_tensor(&per_channel(&|i| 0.5 + 0.4 * i as f32)).unwrap();
    let params = BatchNormParams {
        weight: &gamma,
        bias: &beta,
        running_mean: &rm,
        running_var: &rv,
    };
    let cfg = BatchNormConfig::default();
    for (n, k, stride, pad, relu) in [(1, 3, 1, 1, true), (3, 3, 2, 1, false), (2, 1, 1, 0, true)] {
        let x = rand_tensor(&mut rng, &[n, 4, 9, 9]);
        let w = rand_tensor(&mut rng, &[c, 4, k, k]);
        let b = rand_tensor(&mut rng, &[c]);
        for_each_pool_and_algo(|algo| {
            let (scale, mut shift) = ops::inference_scale_shift(params, cfg.eps).unwrap();
            let bv = b.to_vec1::<f32>().unwrap();
            for i in 0..c {
                shift[i] += bv[i] * scale[i];
            }
            let folded = ops::conv2d_affine(&x, &w, scale, shift, stride, pad, relu).unwrap();
            let y = ops::conv2d(&x, &w, Some(&b), stride, pad, 1).unwrap();
            let bn = if relu {
                ops::batch_norm_relu
            } else {
                ops::batch_norm
            };
            let want = bn(&y, params, cfg).unwrap();
            let d = max_abs_diff(&folded, &want);
            assert!(
                d <= 1e-5 * max_abs(&want).max(1.0),
                "n{n} k{k} s{stride} relu {relu}, {algo:?} on {}: max diff {d}",
                pool()
            );
        });
    }
    // Inference only: an input that needs a gradient is refused rather than silently cut off.
    let x = Var::from_tensor(&rand_tensor(&mut rng, &[1, 4, 5, 5])).unwrap();
    let w = rand_tensor(&mut rng, &[c, 4, 3, 3]);
    let err = ops::conv2d_affine(x.as_tensor(), &w, vec![1.0; c], vec![0.0; c], 1, 1, false);
    assert!(err.is_err());
}
