//! The Adam update as one parallel pass over f32 CPU buffers.
//!
//! Built from tensor ops, one Adam step costs about fifteen single-threaded passes (and as many
//! allocations) over every parameter; for the 31 M parameters of unet-resnet18 that was half a
//! second per training step. Here each element is read and written once, with the same f32
//! operations in the same order as the tensor-op path, so both give the same numbers.

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Result, Tensor};
use rayon::prelude::*;

use crate::ops::cpu_data::{storage_f32, storage_f32_mut};

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

/// The gradient as the step uses it (clipped or unscaled when asked).
fn scaled(g: f32, k: &AdamScalars) -> f32 {
    match k.grad_scale {
        Some(s) => g * s,
        None => g,
    }
}

/// `m ← mom · m + (1 − mom) · g`, in place.
pub fn update_first_moment(m: &mut [f32], g: &[f32], k: &AdamScalars) {
    update_each(m, g, |m, g| m * k.mom + scaled(g, k) * k.one_minus_mom);
}

/// `v ← sqr_mom · v + (1 − sqr_mom) · g²`, in place.
pub fn update_second_moment(v: &mut [f32], g: &[f32], k: &AdamScalars) {
    update_each(v, g, |v, g| {
        let g = scaled(g, k);
        v * k.sqr_mom + (g * g) * k.one_minus_sqr_mom
    });
}

/// `dst[i] ← f(dst[i], g[i])` in parallel chunks.
fn update_each(dst: &mut [f32], g: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) {
    assert_eq!(dst.len(), g.len());
    dst.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .for_each(|(d, g)| d.iter_mut().zip(g).for_each(|(d, &g)| *d = f(*d, g)));
}

/// `p ← decay · p − step_size · m / (sqrt(v / debias2) + eps)`, in place, from the updated
/// moments.
pub fn update_param(p: &mut [f32], m: &[f32], v: &[f32], k: &AdamScalars) {
    assert!(m.len() == p.len() && v.len() == p.len());
    p.par_chunks_mut(CHUNK)
        .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
        .for_each(|(p, (m, v))| {
            for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
                let pi = k.decay.map_or(*p, |d| *p * d);
                let denom = (v * k.inv_debias2).sqrt() + k.eps;
                *p = pi - (m / denom) * k.step_size;
            }
        });
}

/// Which buffer an in-place op updates.
enum Target {
    FirstMoment,
    SecondMoment,
}

struct MomentOp(Target, AdamScalars);

impl InplaceOp2 for MomentOp {
    fn name(&self) -> &'static str {
        "adam-moment"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let g = storage_f32(self.name(), s2, l2)?;
        let m = storage_f32_mut(self.name(), s1, l1)?;
        match self.0 {
            Target::FirstMoment => update_first_moment(m, g, &self.1),
            Target::SecondMoment => update_second_moment(m, g, &self.1),
        }
        Ok(())
    }
}

struct ParamOp(AdamScalars);

impl InplaceOp3 for ParamOp {
    fn name(&self) -> &'static str {
        "adam-param"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<()> {
        let (m, v) = (
            storage_f32(self.name(), s2, l2)?,
            storage_f32(self.name(), s3, l3)?,
        );
        update_param(storage_f32_mut(self.name(), s1, l1)?, m, v, &self.0);
        Ok(())
    }
}

/// One Adam step on f32 CPU tensors, in place: the moments `m` and `v` (which must not share
/// storage with any other tensor) and the parameter `p`. Nothing is allocated, so the step
/// leaves the heap as it found it: allocating new parameters and moments every step scattered
/// them among the freed activations, and UNet-ResNet18's peak memory grew by ~450 MB over six
/// steps. The same f32 operations in the same order as the tensor-op path, so both give the
/// same numbers.
pub fn adam_step(p: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor, k: &AdamScalars) -> Result<()> {
    let g = g.contiguous()?;
    m.inplace_op2(&g, &MomentOp(Target::FirstMoment, *k))?;
    v.inplace_op2(&g, &MomentOp(Target::SecondMoment, *k))?;
    p.inplace_op3(m, v, &ParamOp(*k))
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
        for threads in [1, 2, 7] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let (mut p2, mut m2, mut v2) = (p.clone(), m.clone(), v.clone());
            pool.install(|| {
                update_first_moment(&mut m2, &g, &k);
                update_second_moment(&mut v2, &g, &k);
                update_param(&mut p2, &m2, &v2, &k);
            });
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
        }
    }

    #[test]
    fn the_tensor_step_updates_in_place_and_moves_against_the_gradient() {
        use candle_core::Device;
        let dev = Device::Cpu;
        let p = Tensor::new(&[1.0f32, -2.0, 0.5], &dev).unwrap();
        let g = Tensor::new(&[0.1f32, -0.2, 0.0], &dev).unwrap();
        let (m, v) = (g.zeros_like().unwrap(), g.zeros_like().unwrap());
        let k = scalars(1, None);
        let alias = p.clone();
        adam_step(&p, &g, &m, &v, &k).unwrap();
        let p2 = alias.to_vec1::<f32>().unwrap();
        // Adam's first step moves every parameter with a gradient by about lr, against it.
        let d = k.decay.unwrap();
        assert!((p2[0] - (1.0 * d - 1e-2)).abs() < 1e-4);
        assert!((p2[1] - (-2.0 * d + 1e-2)).abs() < 1e-4);
        assert_eq!(p2[2], 0.5 * d);
        assert_eq!(m.to_vec1::<f32>().unwrap()[1], -0.2 * k.one_minus_mom);
    }

    #[test]
    fn sum_of_squares_is_exact_for_small_integers() {
        let g: Vec<f32> = (0..3 * CHUNK as u32 + 7).map(|i| (i % 5) as f32).collect();
        let want: f64 = g.iter().map(|&x| (x * x) as f64).sum();
        assert_eq!(sum_of_squares(&g), want);
    }
}
