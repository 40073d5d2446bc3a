//! One optimiser step, the body shared by the training loop, the learning-rate finder and the
//! data-parallel workers: forward in training mode, loss, and, when the loss is finite, backward
//! and the update.

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};

use crate::data::Batch;
use crate::learn::loss::LossConfig;
use crate::learn::optim::Adam;
use crate::learn::precision::Precision;
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
    precision: Precision,
) -> Result<f64> {
    let (loss, value) = forward_loss(model, loss, batch, precision)?;
    if value.is_finite() {
        let grads = gradients(&loss, opt)?;
        opt.step(&grads, hypers)?;
    }
    Ok(value)
}

/// The forward pass in training mode and the loss, as a tensor and as a number.
///
/// In half `precision` the images enter the network in that dtype (the layers cast their f32
/// weights to it, and BatchNorm normalises in f32); the outputs come back to f32 for the loss.
pub fn forward_loss(
    model: &dyn KeypointNet,
    loss: &LossConfig,
    batch: &Batch,
    precision: Precision,
) -> Result<(Tensor, f64)> {
    let images = batch.images.to_dtype(precision.dtype())?;
    let out = model.forward_t(&images, true)?.to_dtype(DType::F32)?;
    let loss = loss.compute(&out, &batch.targets, &batch.mask)?;
    let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    Ok((loss, value))
}

/// The backward pass of `loss`, multiplied first by the optimiser's loss scale (f16).
pub fn gradients(loss: &Tensor, opt: &Adam) -> Result<GradStore> {
    let scale = opt.loss_scale();
    Ok(if scale == 1.0 {
        loss.backward()?
    } else {
        (loss * scale)?.backward()?
    })
}
