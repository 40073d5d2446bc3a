//! One optimiser step, the body shared by the training loop and the learning-rate finder:
//! forward in training mode, loss, and, when the loss is finite, backward and the update.

use candle_core::DType;

use crate::data::Batch;
use crate::learn::loss::LossConfig;
use crate::learn::optim::Adam;
use crate::learn::schedule::Hypers;
use crate::models::KeypointNet;
use crate::Result;

/// Trains `model` on `batch` with the rates and momentum of `hypers` and returns the batch's
/// loss. A non-finite loss is returned without a backward pass or an update, so that the caller
/// decides (stop the run, end the sweep) with the parameters as they were.
pub fn train_step(
    model: &dyn KeypointNet,
    loss: &LossConfig,
    opt: &mut Adam,
    batch: &Batch,
    hypers: &Hypers,
) -> Result<f64> {
    let out = model.forward_t(&batch.images, true)?;
    let loss = loss.compute(&out, &batch.targets, &batch.mask)?;
    let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    if value.is_finite() {
        let grads = loss.backward()?;
        opt.step(&grads, hypers)?;
    }
    Ok(value)
}
