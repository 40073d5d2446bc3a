//! The Adam update as one parallel pass over f32 CPU buffers.
//!
//! Built from tensor ops, one Adam step costs about fifteen single-threaded passes (and as many
//! allocations) over every parameter; for the 31 M parameters of unet-resnet18 that was half a
//! second per training step. Here each element is read and written once, with the same f32
//! operations in the same order as the tensor-op path, so both give the same numbers.

use candle_core::Tensor;
use rayon::prelude::*;

use crate::ops::buffer::OutBuf;
use crate::ops::cpu_data::with_f32;

/// Elements per rayon task.
const CHUNK: usize = 64 * 1024;

/// The scalars of one Adam step for one parameter, already in f32 as the tensor ops use them.
#[derive(Clone, Copy, Debug)]
pub struct AdamScalars {
    /// `1 - lr * wd` when the parameter decays.
    pub decay: Option<f32>,
    /// Gradient clipping factor, when clipping is active.
    pub grad_scale: Option<f32>,
    pub mom: f32,
    pub one_minus_mom: f32,
    pub sqr_mom: f32,
    pub one_minus_sqr_mom: f32,
    /// `1 / (1 - sqr_mom^step)`.
    pub inv_debias2: f32,
    pub eps: f32,
    /// `lr / (1 - mom^step)`.
    pub step_size: f32,
}

/// New `(param, m, v)` from the parameter `p`, its gradient `g` and the moments (`None` before
/// the first step: zeros).
pub fn adam_update(
    p: &[f32],
    g: &[f32],
    moments: Option<(&[f32], &[f32])>,
    k: &AdamScalars,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(p.len(), g.len());
    let n = p.len();
    let (mut p2, mut m2, mut v2) = (OutBuf::new(n), OutBuf::new(n), OutBuf::new(n));
    p2.par_chunks_mut(CHUNK)
        .zip(m2.par_chunks_mut(CHUNK))
        .zip(v2.par_chunks_mut(CHUNK))
        .enumerate()
        .for_each(|(c, ((po, mo), vo))| {
            let base = c * CHUNK;
            for i in 0..po.len() {
                let j = base + i;
                let mut gi = g[j];
                if let Some(s) = k.grad_scale {
                    gi *= s;
                }
                let mut pi = p[j];
                if let Some(d) = k.decay {
                    pi *= d;
                }
                let (m0, v0) = moments.map_or((0.0, 0.0), |(m, v)| (m[j], v[j]));
                let m = m0 * k.mom + gi * k.one_minus_mom;
                let v = v0 * k.sqr_mom + (gi * gi) * k.one_minus_sqr_mom;
                let denom = (v * k.inv_debias2).sqrt() + k.eps;
                po[i].write(pi - (m / denom) * k.step_size);
                mo[i].write(m);
                vo[i].write(v);
            }
        });
    // SAFETY: the three buffers have length `n`, so their chunks pair up one to one with equal
    // lengths, and the loop above wrote every index of every chunk of each (a moment shorter
    // than `n` panics on indexing before any buffer is returned).
    unsafe { (p2.assume_init(), m2.assume_init(), v2.assume_init()) }
}

/// [`adam_update`] on f32 CPU tensors: returns the new parameter and moments.
pub fn adam_step(
    p: &Tensor,
    g: &Tensor,
    moments: Option<(Tensor, Tensor)>,
    k: &AdamScalars,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let (p2, m2, v2) = with_f32("adam", p, |ps| {
        with_f32("adam", g, |gs| match &moments {
            Some((m, v)) => with_f32("adam", m, |ms| {
                with_f32("adam", v, |vs| Ok(adam_update(ps, gs, Some((ms, vs)), k)))
            }),
            None => Ok(adam_update(ps, gs, None, k)),
        })
    })?;
    let (shape, dev) = (p.shape(), p.device());
    Ok((
        Tensor::from_vec(p2, shape, dev)?,
        Tensor::from_vec(m2, shape, dev)?,
        Tensor::from_vec(v2, shape, dev)?,
    ))
}

/// Σ g² in f64, the same for any number of threads (partial sums are added in a fixed order).
pub fn sum_of_squares(g: &[f32]) -> f64 {
    let parts: Vec<f64> = g
        .par_chunks(CHUNK)
        .map(|c| c.iter().map(|&x| (x as f64) * (x as f64)).sum())
        .collect();
    parts.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalars(step: i32, clip: Option<f32>) -> AdamScalars {
        let (lr, wd, mom, sqr): (f64, f64, f64, f64) = (1e-2, 0.01, 0.9, 0.99);
        AdamScalars {
            decay: Some((1.0 - lr * wd) as f32),
            grad_scale: clip,
            mom: mom as f32,
            one_minus_mom: (1.0 - mom) as f32,
            sqr_mom: sqr as f32,
            one_minus_sqr_mom: (1.0 - sqr) as f32,
            inv_debias2: (1.0 / (1.0 - sqr.powi(step))) as f32,
            eps: 1e-5,
            step_size: (lr / (1.0 - mom.powi(step))) as f32,
        }
    }

    #[test]
    fn every_element_across_chunks_follows_the_formula() {
        // Longer than two chunks, with a partial last chunk, so a chunk offset error shows.
        let n = 2 * CHUNK + 123;
        let p: Vec<f32> = (0..n).map(|i| ((i % 97) as f32 - 48.0) * 0.01).collect();
        let g: Vec<f32> = (0..n)
            .map(|i| ((i * 31 % 89) as f32 - 44.0) * 0.001)
            .collect();
        let m: Vec<f32> = (0..n).map(|i| (i % 13) as f32 * 1e-4).collect();
        let v: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 1e-6).collect();
        let k = scalars(3, Some(0.5));
        // In pools of 1, 2 and 7 threads, with poisoned buffers: a chunk left unwritten shows
        // as NaN.
        crate::ops::buffer::set_poison(true);
        for threads in [1, 2, 7] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let (p2, m2, v2) = pool.install(|| adam_update(&p, &g, Some((&m, &v)), &k));
            for j in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 5, n - 1] {
                let gj = g[j] * 0.5;
                let mj = m[j] * k.mom + gj * k.one_minus_mom;
                let vj = v[j] * k.sqr_mom + gj * gj * k.one_minus_sqr_mom;
                let pj = p[j] * k.decay.unwrap()
                    - mj / ((vj * k.inv_debias2).sqrt() + k.eps) * k.step_size;
                assert_eq!(
                    (p2[j], m2[j], v2[j]),
                    (pj, mj, vj),
                    "element {j}, {threads} threads"
                );
            }
            assert!(
                p2.iter().chain(&m2).chain(&v2).all(|x| x.is_finite()),
                "{threads} threads"
            );
        }
    }

    #[test]
    fn first_step_starts_from_zero_moments() {
        let p = vec![1.0f32, -2.0, 0.5];
        let g = vec![0.1f32, -0.2, 0.0];
        let k = scalars(1, None);
        let zeros = vec![0f32; 3];
        assert_eq!(
            adam_update(&p, &g, None, &k),
            adam_update(&p, &g, Some((&zeros, &zeros)), &k)
        );
        // Adam's first step moves every parameter with a gradient by about lr, against it.
        let (p2, _, _) = adam_update(&p, &g, None, &k);
        assert!((p2[0] - (p[0] * k.decay.unwrap() - 1e-2)).abs() < 1e-4);
        assert!((p2[1] - (p[1] * k.decay.unwrap() + 1e-2)).abs() < 1e-4);
        assert_eq!(p2[2], p[2] * k.decay.unwrap());
    }

    #[test]
    fn sum_of_squares_is_exact_for_small_integers() {
        let g: Vec<f32> = (0..3 * CHUNK as u32 + 7).map(|i| (i % 5) as f32).collect();
        let want: f64 = g.iter().map(|&x| (x * x) as f64).sum();
        assert_eq!(sum_of_squares(&g), want);
    }
}
