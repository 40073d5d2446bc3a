//! Workers as threads of one process: the collectives meet in shared memory. Sums run in rank
//! order whatever order the workers arrive in, so results are deterministic and the same for
//! every worker.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use candle_core::Tensor;

use super::{flatten, stopped_by, unflatten, Communicator};
use crate::{Error, Result};

/// The communicators of a group of `world` in-process workers, ranks `0..world`, to be moved
/// to one worker each.
pub fn thread_group(world: usize) -> Vec<ThreadComm> {
    let shared = Arc::new(Shared {
        world,
        state: Mutex::new(Round::new(world)),
        arrived: Condvar::new(),
    });
    (0..world)
        .map(|rank| ThreadComm {
            rank,
            shared: Arc::clone(&shared),
        })
        .collect()
}

struct Shared {
    world: usize,
    state: Mutex<Round>,
    arrived: Condvar,
}

/// The collective in progress: each rank's contribution, then the result for all.
struct Round {
    /// Counts finished collectives: a worker waits until it changes.
    generation: u64,
    contributions: Vec<Option<Vec<f32>>>,
    result: Arc<Vec<f32>>,
    /// The first worker that aborted, and why.
    failed: Option<(usize, String)>,
}

impl Round {
    fn new(world: usize) -> Self {
        Round {
            generation: 0,
            contributions: vec![None; world],
            result: Arc::new(Vec::new()),
            failed: None,
        }
    }
}

/// What the last worker to arrive computes from all contributions (in rank order).
type Combine = fn(&mut [Option<Vec<f32>>]) -> Vec<f32>;

/// One in-process worker's communicator.
pub struct ThreadComm {
    rank: usize,
    shared: Arc<Shared>,
}

impl ThreadComm {
    fn lock(&self) -> MutexGuard<'_, Round> {
        // A worker that panicked while holding the lock leaves the round as it was: still valid.
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failure(&self, failed: &(usize, String)) -> Error {
        stopped_by(self.rank, failed.0, &failed.1)
    }

    /// Contributes `mine`, waits for every rank, returns the combined result.
    fn collective(&mut self, mine: Vec<f32>, combine: Combine) -> Result<Arc<Vec<f32>>> {
        let mut round = self.lock();
        if let Some(f) = &round.failed {
            return Err(self.failure(f));
        }
        let generation = round.generation;
        round.contributions[self.rank] = Some(mine);
        if round.contributions.iter().all(Option::is_some) {
            round.result = Arc::new(combine(&mut round.contributions));
            round.contributions.iter_mut().for_each(|c| *c = None);
            round.generation += 1;
            self.shared.arrived.notify_all();
            return Ok(Arc::clone(&round.result));
        }
        while round.generation == generation && round.failed.is_none() {
            round = self
                .shared
                .arrived
                .wait(round)
                .unwrap_or_else(|e| e.into_inner());
        }
        match &round.failed {
            Some(f) if round.generation == generation => Err(self.failure(f)),
            _ => Ok(Arc::clone(&round.result)),
        }
    }
}

fn mean_in_rank_order(contributions: &mut [Option<Vec<f32>>]) -> Vec<f32> {
    let n = contributions.len() as f32;
    let mut parts = contributions.iter().flatten();
    let mut sum = parts.next().cloned().unwrap_or_default();
    for p in parts {
        for (s, v) in sum.iter_mut().zip(p) {
            *s += v;
        }
    }
    if n != 1.0 {
        sum.iter_mut().for_each(|s| *s /= n);
    }
    sum
}

impl Communicator for ThreadComm {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.shared.world
    }

    fn all_reduce_mean(&mut self, tensors: &[Tensor]) -> Result<Vec<Tensor>> {
        if self.shared.world == 1 {
            return Ok(tensors.to_vec());
        }
        let result = self.collective(flatten(tensors)?, mean_in_rank_order)?;
        unflatten(&result, tensors)
    }

    fn broadcast(&mut self, tensors: &[Tensor], root: usize) -> Result<Vec<Tensor>> {
        if self.shared.world == 1 {
            return Ok(tensors.to_vec());
        }
        // The root contributes its values, the others an empty vector; the root's comes back.
        let mine = if self.rank == root {
            flatten(tensors)?
        } else {
            Vec::new()
        };
        fn pick_non_empty(c: &mut [Option<Vec<f32>>]) -> Vec<f32> {
            c.iter_mut()
                .flatten()
                .find(|v| !v.is_empty())
                .map(std::mem::take)
                .unwrap_or_default()
        }
        let result = self.collective(mine, pick_non_empty)?;
        unflatten(&result, tensors)
    }

    fn abort(&mut self, why: &str) {
        let mut round = self.lock();
        if round.failed.is_none() {
            round.failed = Some((self.rank, why.to_string()));
        }
        self.shared.arrived.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn run<R: Send>(world: usize, f: impl Fn(&mut ThreadComm) -> R + Sync) -> Vec<R> {
        let mut comms = thread_group(world);
        std::thread::scope(|s| {
            let handles: Vec<_> = comms.iter_mut().map(|c| s.spawn(|| f(c))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn all_reduce_averages_and_broadcast_copies_the_root() {
        let out = run(3, |c| {
            let r = c.rank() as f32;
            let a = Tensor::new(&[r, 10.0 * r], &Device::Cpu).unwrap();
            let b = Tensor::new(&[[r], [1.0]], &Device::Cpu).unwrap();
            let mean = c.all_reduce_mean(&[a.clone(), b]).unwrap();
            let root = c.broadcast(&[a], 2).unwrap();
            (
                mean[0].to_vec1::<f32>().unwrap(),
                mean[1].dims().to_vec(),
                root[0].to_vec1::<f32>().unwrap(),
            )
        });
        for (mean, dims, root) in out {
            assert_eq!(mean, vec![1.0, 10.0]);
            assert_eq!(dims, vec![2, 1]);
            assert_eq!(root, vec![2.0, 20.0]);
        }
    }

    #[test]
    fn an_aborting_worker_stops_the_others_with_its_rank() {
        let out = run(3, |c| {
            if c.rank() == 1 {
                c.abort("out of memory");
                return Err(Error::Msg("aborted".into()));
            }
            let t = Tensor::new(&[1f32], &Device::Cpu).unwrap();
            c.all_reduce_mean(&[t]).map(|_| ())
        });
        for (rank, r) in out.iter().enumerate() {
            let e = r.as_ref().unwrap_err().to_string();
            if rank != 1 {
                assert!(e.contains("worker 1 failed: out of memory"), "{e}");
            }
        }
    }
}
