//! NCCL between GPUs (the `nccl` feature): one communicator per worker, each on its own CUDA
//! device, formed from one id (made on node 0 and handed to the other machines by
//! [`super::rendezvous`]). The collectives run on the device's stream, on the tensors' memory:
//! nothing goes through the host.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::nccl::safe::{Comm, Id, ReduceOp};
use candle_core::{CudaStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};

use super::Communicator;
use crate::{Error, Result};

/// Length of an NCCL unique id in bytes.
pub const ID_LEN: usize = 128;

fn nccl_error(what: &str, e: impl std::fmt::Debug) -> Error {
    Error::Msg(format!("nccl {what}: {e:?}"))
}

/// A new group id, made once (on node 0) and given to every worker.
pub fn new_id() -> Result<[u8; ID_LEN]> {
    let id = Id::new().map_err(|e| nccl_error("unique id", e))?;
    Ok(id.internal().map(|c| c as u8))
}

/// One GPU worker's communicator.
pub struct NcclComm {
    comm: Comm,
    rank: usize,
    world: usize,
}

// SAFETY: a `Comm` holds NCCL's communicator handle and its device's stream. NCCL requires that
// one communicator is not used by two threads at once; an `NcclComm` is owned by exactly one
// worker, which lends it (`&mut`) to one thread at a time, so calls never overlap.
unsafe impl Send for NcclComm {}

impl NcclComm {
    /// Joins the group as `rank` of `world` on `device` (a CUDA device), from the group's `id`.
    /// Blocks until every rank has joined.
    pub fn join(device: &Device, rank: usize, world: usize, id: &[u8; ID_LEN]) -> Result<Self> {
        let stream = device.as_cuda_device()?.cuda_stream();
        let id = Id::uninit(id.map(|b| b as std::ffi::c_char));
        let comm = Comm::from_rank(stream, rank, world, id).map_err(|e| nccl_error("init", e))?;
        Ok(NcclComm { comm, rank, world })
    }

    /// Runs `op` over the tensors as one flat f32 buffer, and splits the result back.
    fn flat_op(&self, tensors: &[Tensor], op: Collective) -> Result<Vec<Tensor>> {
        let parts: Vec<Tensor> = tensors
            .iter()
            .map(|t| t.flatten_all()?.to_dtype(DType::F32))
            .collect::<candle_core::Result<_>>()?;
        let flat = Tensor::cat(&parts, 0)?;
        let reduced = flat.apply_op1_no_bwd(&NcclOp {
            comm: &self.comm,
            op,
        })?;
        let mut at = 0;
        tensors
            .iter()
            .map(|t| {
                let n = t.elem_count();
                let part = reduced
                    .narrow(0, at, n)?
                    .reshape(t.shape())?
                    .to_dtype(t.dtype())?;
                at += n;
                Ok(part)
            })
            .collect()
    }
}

#[derive(Clone, Copy)]
enum Collective {
    Mean,
    Broadcast(usize),
}

/// The collective as a Candle op on CUDA storage: output in a fresh buffer on the same stream.
struct NcclOp<'a> {
    comm: &'a Comm,
    op: Collective,
}

impl CustomOp1 for NcclOp<'_> {
    fn name(&self) -> &'static str {
        "hmreg-nccl"
    }

    fn cpu_fwd(
        &self,
        _: &candle_core::CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        candle_core::bail!("NCCL collectives need CUDA tensors")
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        let Some((start, end)) = l.contiguous_offsets() else {
            candle_core::bail!("nccl: the flat buffer must be contiguous");
        };
        let src = s.as_cuda_slice::<f32>()?.slice(start..end);
        let dev = s.device().clone();
        // SAFETY: the collective writes every element of `dst` before anything reads it.
        let mut dst = unsafe { dev.alloc::<f32>(end - start)? };
        let status = match self.op {
            Collective::Mean => self.comm.all_reduce(&src, &mut dst, &ReduceOp::Avg),
            Collective::Broadcast(root) => self.comm.broadcast(Some(&src), &mut dst, root as i32),
        };
        status.map_err(|e| candle_core::Error::Msg(format!("nccl collective: {e:?}")))?;
        Ok((CudaStorage::wrap_cuda_slice(dst, dev), l.shape().clone()))
    }
}

impl Communicator for NcclComm {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.world
    }

    fn all_reduce_mean(&mut self, tensors: &[Tensor]) -> Result<Vec<Tensor>> {
        self.flat_op(tensors, Collective::Mean)
    }

    fn broadcast(&mut self, tensors: &[Tensor], root: usize) -> Result<Vec<Tensor>> {
        self.flat_op(tensors, Collective::Broadcast(root))
    }

    /// NCCL cannot wake the other ranks from a collective they are already waiting in (they
    /// would wait for this rank forever), so a failing worker ends the process, as torchrun ends
    /// a group whose member died: the error names the rank, the exit code is not 0, the other
    /// machines' NCCL calls fail on the broken connections, and the checkpoints written so far
    /// (atomically) stay loadable.
    fn abort(&mut self, why: &str) {
        eprintln!(
            "error: data-parallel worker {} failed: {why}; every worker stopped",
            self.rank
        );
        std::process::exit(crate::error::EXIT_PROBLEMS);
    }
}
