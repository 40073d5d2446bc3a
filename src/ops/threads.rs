//! Thread control for every CPU kernel: our custom ops (rayon's global pool, gemm with
//! `Parallelism::Rayon`), and Candle's CPU backend (its matmul reads `RAYON_NUM_THREADS` on every
//! call, its element-wise ops use rayon's global pool).

/// Sets the number of CPU threads. Call once at start-up, before any tensor work: rayon's global
/// pool can be configured only before its first use (an error says so otherwise).
pub fn set_threads(n: usize) -> Result<(), String> {
    if n == 0 {
        return Err("the number of threads must be at least 1".into());
    }
    // Read by Candle's gemm calls each time (candle_core::utils::get_num_threads).
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .or_else(|e| {
            // Already started: fine if it has the requested size.
            if rayon::current_num_threads() == n {
                Ok(())
            } else {
                Err(format!("cannot set {n} threads: {e}"))
            }
        })
}

/// The number of threads the CPU kernels use.
pub fn num_threads() -> usize {
    rayon::current_num_threads()
}
