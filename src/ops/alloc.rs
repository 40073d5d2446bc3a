//! glibc allocator settings for training: big activation buffers are allocated and freed every
//! step, and glibc's defaults return them to the kernel each time (mmap for blocks over 128 KiB
//! up to a dynamic threshold, trimming of the heap top), so every step pays page faults for
//! hundreds of MB. Measured on 2 cores (docs/candle-notes.md): system time per run ~10 s -> ~2 s.
//!
//! Values: no block is served by mmap (glibc caps the mmap threshold at 32 MiB, and full-resolution
//! activations are far larger: 8 x 99 x 256 x 256 floats are 207 MB), the heap top is practically
//! never trimmed, and the heap grows with 1 GiB of padding, so freed activations are reused in
//! place instead of being faulted in again. Top pad is address space: pages count as resident only
//! once touched. Measured with the speed bench (unet-resnet18, batch 8, 2 threads): mmap for blocks
//! over 32 MiB gave a 13.4 s training step with 23 s of system time per run; no mmap gave 8.2 s
//! and 7 s, for 6% more peak memory. This is the main arena's heap: threads other than the main
//! one get arenas of 64 MiB heaps, whose large blocks are mmap'd whatever `M_MMAP_MAX` says, so
//! the work runs on the main thread (see [`super::threads::set_threads`]).

/// Applies the settings; returns whether the allocator accepted all of them (always false off
/// glibc, where this does nothing). Call once at start-up, before large allocations.
pub fn tune_allocator() -> bool {
    imp::tune()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    /// Largest number of blocks served by mmap at once: none, so every block comes from the heap.
    const MMAP_MAX: i32 = 0;
    /// Free memory at the heap top kept before giving it back to the kernel.
    const TRIM_THRESHOLD: i32 = i32::MAX;
    /// Extra bytes requested from the kernel whenever the heap grows.
    const TOP_PAD: i32 = 1 << 30;

    pub fn tune() -> bool {
        // SAFETY: mallopt takes two integers and touches no memory of ours: it only sets glibc
        // malloc's tuning parameters (documented options with in-range values; an unknown
        // option or value is rejected with a 0 return, not undefined behaviour), and glibc
        // takes the main arena's lock while it changes them.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, MMAP_MAX) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
                && libc::mallopt(libc::M_TOP_PAD, TOP_PAD) == 1
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    pub fn tune() -> bool {
        false
    }
}
