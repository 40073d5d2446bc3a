//! Output buffers for the CPU kernels.
//!
//! The allocator hands large activations back from a reused heap (see [`super::alloc`]), so
//! `vec![0.0; n]` costs a full memset that a kernel then overwrites: 9% of an HRNet training step
//! was spent zeroing such buffers. A kernel therefore writes into an [`OutBuf`] instead: `len`
//! floats of uninitialised memory seen as `[MaybeUninit<f32>]` (writing is safe, reading is not),
//! which [`OutBuf::assume_init`] turns into a `Vec<f32>` once every element has been written. No
//! zeroing, no extra pass, no copy (the allocation becomes the vector's).
//!
//! Poisoning: while [`poison_enabled`] (by default in debug builds; switched at run time with
//! [`set_poison`], which the op tests call), every new buffer is filled with NaN before the
//! kernel sees it. An element a kernel forgets to write, or a destination a gemm reads before
//! writing it, then comes out as NaN and fails the tests, instead of silently holding whatever
//! the allocator left there.

use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether new buffers are filled with NaN; on by default in debug builds.
static POISON: AtomicBool = AtomicBool::new(cfg!(debug_assertions));

/// Turns NaN poisoning of new [`OutBuf`]s on or off (for the whole process). Tests of the
/// kernels turn it on so that they catch missed writes in release builds too.
pub fn set_poison(on: bool) {
    POISON.store(on, Ordering::Relaxed);
}

/// Whether new [`OutBuf`]s are filled with NaN (see [`set_poison`]).
pub fn poison_enabled() -> bool {
    POISON.load(Ordering::Relaxed)
}

/// `len` floats for a kernel to write, then to hand out as a `Vec<f32>` with
/// [`OutBuf::assume_init`]. Dereferences to `[MaybeUninit<f32>]`: parallel writers split it
/// with the slice methods (`par_chunks_mut`, `split_at_mut`) and write with
/// [`MaybeUninit::write`]; writers that only take raw pointers (gemm) use
/// [`OutBuf::as_mut_ptr`].
pub struct OutBuf {
    data: Box<[MaybeUninit<f32>]>,
    poisoned: bool,
}

impl OutBuf {
    /// A buffer of `len` floats: uninitialised, or all NaN while [`poison_enabled`].
    pub fn new(len: usize) -> Self {
        let mut data = Box::new_uninit_slice(len);
        let poisoned = poison_enabled();
        if poisoned {
            data.fill(MaybeUninit::new(f32::NAN));
        }
        OutBuf { data, poisoned }
    }

    /// Whether the buffer was filled with NaN when created (every element is then initialised,
    /// written by the kernel or not).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// The start of the buffer, for writers that take raw pointers. Valid for writes of
    /// `self.len()` floats while the buffer lives and is not moved out of.
    pub fn as_mut_ptr(&mut self) -> *mut f32 {
        self.data.as_mut_ptr().cast()
    }

    /// The start of the buffer for reading back through raw pointers; only elements already
    /// written may be read.
    pub fn as_ptr(&self) -> *const f32 {
        self.data.as_ptr().cast()
    }

    /// The floats as a vector, without copying.
    ///
    /// # Safety
    /// Every element must be initialised: written since [`OutBuf::new`] (through the slice or
    /// through [`OutBuf::as_mut_ptr`]), or the buffer [`OutBuf::is_poisoned`].
    pub unsafe fn assume_init(self) -> Vec<f32> {
        // SAFETY: the caller guarantees that every element is initialised, and MaybeUninit<f32>
        // has the layout of f32; the boxed slice's allocation becomes the vector's.
        unsafe { self.data.assume_init() }.into_vec()
    }
}

impl Deref for OutBuf {
    type Target = [MaybeUninit<f32>];
    fn deref(&self) -> &Self::Target {
        &self.data
    }
}

impl DerefMut for OutBuf {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisoned_buffer_shows_a_missed_write_as_nan() {
        set_poison(true);
        let mut b = OutBuf::new(5);
        assert!(b.is_poisoned());
        // A kernel that forgets the last element.
        for (i, v) in b[..4].iter_mut().enumerate() {
            v.write(i as f32);
        }
        // SAFETY: the buffer is poisoned, so the element not written holds NaN.
        let v = unsafe { b.assume_init() };
        assert_eq!(&v[..4], &[0.0, 1.0, 2.0, 3.0]);
        assert!(v[4].is_nan());
        // Through the raw-pointer path as well (what gemm writes through).
        let mut b = OutBuf::new(3);
        // SAFETY: index 1 is inside the 3-float buffer.
        unsafe { b.as_mut_ptr().add(1).write(7.0) };
        // SAFETY: poisoned, as above.
        let v = unsafe { b.assume_init() };
        assert!(v[0].is_nan() && v[1] == 7.0 && v[2].is_nan());
    }

    #[test]
    fn fully_written_buffer_keeps_its_values_and_length() {
        let mut b = OutBuf::new(1000);
        assert_eq!(b.len(), 1000);
        for (i, v) in b.iter_mut().enumerate() {
            v.write(i as f32 * 0.5);
        }
        // SAFETY: the loop above wrote every element.
        let v = unsafe { b.assume_init() };
        assert_eq!(v.len(), 1000);
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as f32 * 0.5));
        // SAFETY: an empty buffer has no element to write.
        assert!(unsafe { OutBuf::new(0).assume_init() }.is_empty());
    }
}
