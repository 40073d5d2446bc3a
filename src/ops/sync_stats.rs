//! Statistics shared between data-parallel workers, for synchronised BatchNorm: a worker
//! installs a [`StatsReducer`] on its thread for a training step, and BatchNorm layers in
//! `sync` mode then normalise with the mean and variance of the whole global batch.
//!
//! The mean over workers is differentiable: its gradient with respect to each worker's input is
//! the mean over workers of the gradients arriving at the output (every worker's loss depends on
//! the shared statistics), so the backward pass runs the same collective on the gradients.

use std::cell::RefCell;
use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// The workers' collective that synchronised BatchNorm needs.
pub trait StatsReducer: Send + Sync {
    /// Number of workers.
    fn world(&self) -> usize;
    /// The element-wise mean of `t` over the workers (every worker calls it in the same order).
    fn mean(&self, t: &Tensor) -> Result<Tensor>;
}

thread_local! {
    static REDUCER: RefCell<Option<Arc<dyn StatsReducer>>> = const { RefCell::new(None) };
}

/// Runs `f` with `reducer` installed on this thread (restored afterwards).
pub fn with_stats_reducer<R>(reducer: Arc<dyn StatsReducer>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Arc<dyn StatsReducer>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            REDUCER.with(|r| *r.borrow_mut() = self.0.take());
        }
    }
    let _restore = Restore(REDUCER.with(|r| r.borrow_mut().replace(reducer)));
    f()
}

/// The reducer installed on this thread, if any.
pub fn current() -> Option<Arc<dyn StatsReducer>> {
    REDUCER.with(|r| r.borrow().clone())
}

/// The mean of `t` over the workers, with the gradient rule of the module comment.
pub fn mean_over_workers(reducer: &Arc<dyn StatsReducer>, t: &Tensor) -> Result<Tensor> {
    // A fresh buffer of exactly the statistics (the forward hands its storage on as is).
    let reduced = reducer.mean(&t.detach())?.copy()?;
    t.apply_op2(
        &reduced,
        MeanOverWorkers {
            reducer: Arc::clone(reducer),
        },
    )
}

/// `(local, reduced) -> reduced`; backward: the mean over workers of the incoming gradient, to
/// `local`.
struct MeanOverWorkers {
    reducer: Arc<dyn StatsReducer>,
}

impl CustomOp2 for MeanOverWorkers {
    fn name(&self) -> &'static str {
        "hmreg-mean-over-workers"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        reduced: &CpuStorage,
        l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        Ok((reduced.try_clone(l)?, l.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
        reduced: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        Ok((reduced.try_clone(l)?, l.shape().clone()))
    }

    fn bwd(
        &self,
        _local: &Tensor,
        _reduced: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(self.reducer.mean(grad)?), None))
    }
}
