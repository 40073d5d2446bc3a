//! Timing and input helpers shared by the benches.

use std::time::Instant;

use hmreg::Keypoints;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Median wall time of `reps` calls of `f` in milliseconds, after `warmup` untimed calls (the
/// first calls pay page faults of fresh buffers, which are not the measured code's cost).
pub fn median_ms(warmup: usize, reps: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..warmup {
        f();
    }
    let mut t: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[t.len() / 2]
}

/// `n` samples of `l` points drawn uniformly over a `w` x `h` map.
pub fn random_keypoints(
    n: usize,
    l: usize,
    w: usize,
    h: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<Keypoints> {
    (0..n)
        .map(|_| {
            Keypoints::new(
                (0..l)
                    .map(|_| {
                        [
                            rng.random::<f32>() * w as f32,
                            rng.random::<f32>() * h as f32,
                        ]
                    })
                    .collect(),
            )
        })
        .collect()
}
