//! The collective operations of data-parallel training behind one small interface,
//! [`Communicator`], with two implementations: worker threads of one process
//! ([`threads::thread_group`], any device, what the CPU uses and what the tests run) and NCCL
//! between GPUs, in one process or across machines ([`nccl`], behind the `nccl` cargo feature).
//! [`rendezvous`] hands the NCCL id from the first machine to the others over TCP.
//!
//! Every worker calls the same collectives in the same order with tensors of the same shapes;
//! every worker receives bit-identical results, which keeps replicas identical.

pub mod rendezvous;
pub mod threads;

#[cfg(feature = "nccl")]
pub mod nccl;

use candle_core::Tensor;

use crate::{Error, Result};

/// One worker's end of a group of data-parallel workers.
pub trait Communicator: Send {
    /// This worker's rank, `0..world()`.
    fn rank(&self) -> usize;

    /// Number of workers in the group.
    fn world(&self) -> usize;

    /// The element-wise mean of each tensor over all workers, on this worker's device.
    fn all_reduce_mean(&mut self, tensors: &[Tensor]) -> Result<Vec<Tensor>>;

    /// Rank `root`'s tensors, on this worker's device (the others pass tensors of the same shapes).
    fn broadcast(&mut self, tensors: &[Tensor], root: usize) -> Result<Vec<Tensor>>;

    /// Tells the group that this worker failed: the other workers' pending and later collectives
    /// fail with an error naming this rank and `why`, instead of waiting for it forever.
    fn abort(&mut self, why: &str);
}

/// The error of a worker whose collective was cut short because worker `rank` failed.
pub fn stopped_by(me: usize, rank: usize, why: &str) -> Error {
    Error::Msg(format!(
        "data-parallel worker {me} {STOPPED} {rank} failed: {why}"
    ))
}

/// Whether `e` is a [`stopped_by`] error (a consequence, not the cause, of a failure).
pub fn is_stopped(e: &Error) -> bool {
    e.to_string().contains(STOPPED)
}

const STOPPED: &str = "stopped because worker";

/// The tensors as one flat f32 vector (the collectives' wire format), and back.
pub(crate) fn flatten(tensors: &[Tensor]) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(tensors.iter().map(Tensor::elem_count).sum());
    for t in tensors {
        out.extend(
            t.flatten_all()?
                .to_dtype(candle_core::DType::F32)?
                .to_vec1::<f32>()?,
        );
    }
    Ok(out)
}

/// Splits `flat` back into tensors shaped like `like`, on `like`'s devices and dtypes.
pub(crate) fn unflatten(flat: &[f32], like: &[Tensor]) -> Result<Vec<Tensor>> {
    let mut at = 0;
    like.iter()
        .map(|t| {
            let n = t.elem_count();
            let part = Tensor::from_slice(&flat[at..at + n], t.shape(), t.device())?;
            at += n;
            Ok(part.to_dtype(t.dtype())?)
        })
        .collect()
}
