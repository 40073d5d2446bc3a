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

/// How many times an idle worker of Candle's own CPU pool spins before it parks (Candle's
/// default is 25,000).
const CANDLE_SPIN_LIMIT: &str = "64";

/// Makes the workers of Candle's own CPU pool park almost at once when idle, unless
/// `CANDLE_BARRIER_POOL_SPIN_LIMIT` is already set. Candle 0.11 runs its element-wise ops on a
/// pool of its own, beside the rayon pool our kernels use, and after each op its workers spin
/// long enough to take a core from our kernels on a 2-core machine. Measured here: HRNet training
/// step ~2.1 s -> ~1.7 s, quickstart run 83 s -> 72 s. Call at start-up, before any tensor work
/// and before other threads exist (it sets an environment variable).
pub fn limit_candle_spinning() {
    const VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if std::env::var_os(VAR).is_none() {
        std::env::set_var(VAR, CANDLE_SPIN_LIMIT);
    }
}

/// The number of threads the CPU kernels use.
pub fn num_threads() -> usize {
    rayon::current_num_threads()
}
