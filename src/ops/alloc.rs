//! glibc allocator settings for training: big activation buffers are allocated and freed every
//! step, and glibc's defaults return them to the kernel each time (mmap for blocks over 128 KiB
//! up to a dynamic threshold, trimming of the heap top), so every step pays page faults for
//! hundreds of MB. Measured on 2 cores (docs/candle-notes.md): system time per run ~10 s -> ~2 s.
//!
//! Values (the ones measured in the notes): blocks up to 32 MiB come from the heap (larger ones
//! still use mmap), the heap top is practically never trimmed, and the heap grows with 1 GiB of
//! padding, so freed activations are reused in place instead of being faulted in again. Top pad
//! is address space: pages count as resident only once touched.

/// Applies the settings; returns whether the allocator accepted all of them (always false off
/// glibc, where this does nothing). Call once at start-up, before large allocations.
pub fn tune_allocator() -> bool {
    imp::tune()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    /// Blocks below this size are served from the heap and reused instead of mmap/munmap'd.
    const MMAP_THRESHOLD: i32 = 32 << 20;
    /// Free memory at the heap top kept before giving it back to the kernel.
    const TRIM_THRESHOLD: i32 = i32::MAX;
    /// Extra bytes requested from the kernel whenever the heap grows.
    const TOP_PAD: i32 = 1 << 30;

    pub fn tune() -> bool {
        // SAFETY: mallopt only changes allocator parameters; it is called with valid options.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
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
