//! Thread control for every CPU kernel: our custom ops (rayon's global pool, gemm with
//! `Parallelism::Rayon`), and Candle's CPU backend (its matmul reads `RAYON_NUM_THREADS` on every
//! call, its element-wise ops use rayon's global pool).

/// Sets the number of CPU threads, the calling thread being one of them. Call once at start-up,
/// from the thread that then runs the work, before any tensor work: rayon's global pool can be
/// configured only before its first use (an error says so otherwise).
///
/// The calling thread joins the pool as its worker 0, so every parallel kernel it calls starts
/// on it, instead of being handed from a thread outside the pool to a woken worker and waited
/// for (the quickstart training, made of many small ops, went from 70 s to 36 s, with system time
/// 55 s -> 10 s). It also keeps allocating from glibc's main arena, the heap that [`super::alloc`]
/// tunes: other threads get arenas of 64 MiB heaps that cannot hold a large activation and fall
/// back to mmap (UNet train step 7.3-7.9 s when run on a pool thread, 5.5 s here). With one
/// thread the pool keeps its own worker (see below).
pub fn set_threads(n: usize) -> Result<(), String> {
    if n == 0 {
        return Err("the number of threads must be at least 1".into());
    }
    // Read by Candle's gemm calls each time (candle_core::utils::get_num_threads).
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    let builder = rayon::ThreadPoolBuilder::new().num_threads(n);
    // With one thread, the caller would be the pool's only worker, and work handed to the pool
    // by any other thread (while the caller waits for that thread) would never run.
    let builder = if n > 1 {
        builder.use_current_thread()
    } else {
        builder
    };
    builder.build_global().or_else(|e| {
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

/// The default number of threads: one per core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The number of threads the CPU kernels use.
pub fn num_threads() -> usize {
    rayon::current_num_threads()
}
