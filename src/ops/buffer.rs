//! Output buffers for the CPU kernels.
//!
//! The allocator hands large activations back from a reused heap (see [`super::alloc`]), so
//! `vec![0.0; n]` costs a full memset that a kernel then overwrites: 9% of an HRNet training step
//! was spent zeroing such buffers.

use std::mem::MaybeUninit;

/// A vector of `len` floats with unspecified contents, for a kernel that writes every element
/// before anything reads it (Candle's own CPU backend allocates its outputs the same way).
///
/// # Safety
/// The caller must write every element before reading any of them.
pub unsafe fn uninit_f32(len: usize) -> Vec<f32> {
    let mut v = std::mem::ManuallyDrop::new(Vec::<MaybeUninit<f32>>::with_capacity(len));
    // SAFETY: the allocation holds `len` values of the same size and alignment as f32; f32 has
    // no invalid bit patterns, and the caller's contract rules out reading before writing.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<f32>(), len, v.capacity()) }
}
