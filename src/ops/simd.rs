//! The vector width of the hand-written CPU kernels: what the machine has, and a per-thread
//! override so that tests and benches run the narrower path on a machine with the wider one.
//!
//! The direct convolution has AVX2 tiles (8 floats per register, 16 registers) and AVX-512 tiles
//! (16 floats, 32 registers). On an AVX-512 machine both run, so both are tested there and the
//! benches compare them in one process; on an AVX2 machine only the AVX2 tiles exist.

use std::cell::Cell;

/// A vector extension the kernels are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum VectorWidth {
    /// AVX2 + FMA: 256-bit registers.
    Avx2,
    /// AVX-512F and VL (with AVX2 + FMA): 512-bit registers and lane masks. VL lets the
    /// 128- and 256-bit steps of a horizontal sum use registers 16-31; without it the compiler
    /// keeps every value that is summed in the first sixteen and spills the rest.
    Avx512,
}

impl VectorWidth {
    /// Floats per register.
    pub fn lanes(self) -> usize {
        match self {
            VectorWidth::Avx2 => 8,
            VectorWidth::Avx512 => 16,
        }
    }

    /// The name benches print.
    pub fn name(self) -> &'static str {
        match self {
            VectorWidth::Avx2 => "AVX2",
            VectorWidth::Avx512 => "AVX-512",
        }
    }
}

/// The widest extension this machine runs (checked once), or `None` off x86-64 or without
/// AVX2 + FMA.
pub fn widest() -> Option<VectorWidth> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static WIDEST: OnceLock<Option<VectorWidth>> = OnceLock::new();
        *WIDEST.get_or_init(|| {
            let avx2 = std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma");
            let avx512 = std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl");
            match (avx2, avx512) {
                (true, true) => Some(VectorWidth::Avx512),
                (true, false) => Some(VectorWidth::Avx2),
                _ => None,
            }
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// Every width this machine runs, narrowest first (what tests iterate over).
pub fn available() -> Vec<VectorWidth> {
    [VectorWidth::Avx2, VectorWidth::Avx512]
        .into_iter()
        .filter(|&w| widest().is_some_and(|best| w <= best))
        .collect()
}

/// `width` if this machine runs it (what a kernel checks before it enables an extension).
pub fn runnable(width: Option<VectorWidth>) -> Option<VectorWidth> {
    width.filter(|&w| Some(w) <= widest())
}

thread_local! {
    static LIMIT: Cell<Option<VectorWidth>> = const { Cell::new(None) };
}

/// The width kernels started on this thread use: the widest the machine has, capped by
/// [`with_vector_width`]. Kernels read it on the calling thread and hand it to their workers.
pub fn current() -> Option<VectorWidth> {
    let best = widest()?;
    Some(LIMIT.get().map_or(best, |limit| limit.min(best)))
}

/// Runs `f` with the kernels this thread starts limited to `width` (a wider limit than the
/// machine has changes nothing).
pub fn with_vector_width<R>(width: VectorWidth, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<VectorWidth>);
    impl Drop for Restore {
        fn drop(&mut self) {
            LIMIT.set(self.0);
        }
    }
    let _restore = Restore(LIMIT.replace(Some(width)));
    f()
}

/// A loop to compile for each vector width: its `run` must be `#[inline(always)]`, so that it
/// is compiled inside [`vectorized`]'s per-extension copies (a closure would stay one baseline
/// function that every copy calls).
pub trait Kernel {
    type Output;
    fn run(self) -> Self::Output;
}

/// Runs `k` compiled for `width` (where the machine runs it; otherwise as built): its loops are
/// auto-vectorised for that extension instead of the baseline SSE2. Read the width on the
/// calling thread ([`current`]) and hand it to rayon's workers, which call this.
///
/// The arithmetic is the same at every width (Rust never fuses a multiply and an add on its
/// own), so results do not depend on the machine as long as `k`'s own summation order does not.
#[inline(always)]
pub fn vectorized<K: Kernel>(width: Option<VectorWidth>, k: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    {
        match runnable(width) {
            // SAFETY: `widest` found AVX-512 F and VL (and AVX2 + FMA) on this machine.
            Some(VectorWidth::Avx512) => return unsafe { run_avx512(k) },
            // SAFETY: `widest` found at least AVX2 + FMA on this machine.
            Some(VectorWidth::Avx2) => return unsafe { run_avx2(k) },
            None => {}
        }
    }
    let _ = width;
    k.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
unsafe fn run_avx512<K: Kernel>(k: K) -> K::Output {
    k.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2<K: Kernel>(k: K) -> K::Output {
    k.run()
}
