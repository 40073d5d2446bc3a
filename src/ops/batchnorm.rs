//! Batch normalisation over NCHW with PyTorch semantics.
//!
//! On the CPU with f32, batch norm is one fused custom op (statistics in one pass, normalisation
//! and optional ReLU in a second, backward as one reduction pass plus one pass for the input
//! gradient; inference folds the running statistics into a per-channel scale and shift). Other
//! devices and dtypes use [`batch_norm_reference`], built from Candle tensor ops.

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor, Var, D};

use super::batchnorm_cpu;
use super::cpu_data::{storage_f32, with_f32};

/// One batch-norm layer's tensors: the affine parameters `γ` (`weight`) and `β` (`bias`), and
/// the running statistics, updated in place in training mode.
#[derive(Clone, Copy, Debug)]
pub struct BatchNormParams<'a> {
    pub weight: &'a Tensor,
    pub bias: &'a Tensor,
    pub running_mean: &'a Var,
    pub running_var: &'a Var,
}

/// How batch norm runs (in the manner of candle-nn's `BatchNormConfig`). The default is
/// PyTorch's `BatchNorm2d` in inference mode: momentum 0.1, eps 1e-5.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormConfig {
    /// Normalise with the batch statistics and update the running ones (training mode), rather
    /// than normalise with the running statistics (inference mode).
    pub train: bool,
    /// Weight of the batch in the running-statistics update.
    pub momentum: f64,
    /// Added to the variance before the square root.
    pub eps: f64,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        BatchNormConfig {
            train: false,
            momentum: 0.1,
            eps: 1e-5,
        }
    }
}

/// Batch norm. In training mode, normalises with the batch statistics (biased variance) and
/// updates the running statistics in place with PyTorch's rule
/// `running = (1 - momentum) * running + momentum * batch` (unbiased variance for `running_var`).
/// In inference mode, uses the running statistics.
pub fn batch_norm(x: &Tensor, p: BatchNormParams, cfg: BatchNormConfig) -> Result<Tensor> {
    batch_norm_act(x, p, cfg, false)
}

/// [`batch_norm`] followed by a ReLU, fused into one op on the CPU (saves one pass over the
/// activation and one stored tensor per layer).
pub fn batch_norm_relu(x: &Tensor, p: BatchNormParams, cfg: BatchNormConfig) -> Result<Tensor> {
    batch_norm_act(x, p, cfg, true)
}

fn batch_norm_act(
    x: &Tensor,
    p: BatchNormParams,
    cfg: BatchNormConfig,
    relu: bool,
) -> Result<Tensor> {
    let BatchNormParams {
        weight,
        bias,
        running_mean,
        running_var,
    } = p;
    let fast = x.rank() == 4
        && super::portable::cpu_kernels(&[
            x,
            weight,
            bias,
            running_mean.as_tensor(),
            running_var.as_tensor(),
        ]);
    if !fast {
        // Half-precision activations are normalised in f32 (the parameters' dtype): batch
        // statistics summed in bf16 lose most of their digits.
        let y = if x.dtype() == weight.dtype() {
            batch_norm_reference(x, p, cfg)?
        } else {
            batch_norm_reference(&x.to_dtype(weight.dtype())?, p, cfg)?.to_dtype(x.dtype())?
        };
        return if relu { super::relu(&y) } else { Ok(y) };
    }
    let (n, c, h, w) = x.dims4()?;
    let hw = h * w;
    let x = x.contiguous()?;
    let (mean, var) = if cfg.train {
        let (mean, var) = with_f32("batch_norm", &x, |xs| {
            Ok(batchnorm_cpu::channel_stats(xs, n, c, hw))
        })?;
        update_running(running_mean, running_var, &mean, &var, n * hw, cfg.momentum)?;
        (mean, var)
    } else {
        (
            running_mean.as_tensor().flatten_all()?.to_vec1::<f32>()?,
            running_var.as_tensor().flatten_all()?.to_vec1::<f32>()?,
        )
    };
    let invstd = var
        .iter()
        .map(|&v| 1.0 / (v as f64 + cfg.eps).sqrt() as f32)
        .collect();
    let op = BatchNormOp {
        mean,
        invstd,
        train: cfg.train,
        relu,
    };
    x.apply_op3(&weight.contiguous()?, &bias.contiguous()?, op)
}

/// Inference-mode batch norm as a per-channel affine map `y = x · scale + shift`, with
/// `scale = γ / sqrt(running_var + eps)` and `shift = β − running_mean · scale` (the same
/// arithmetic as the fused op's inference pass), for folding into a preceding convolution.
pub fn inference_scale_shift(p: BatchNormParams, eps: f64) -> Result<(Vec<f32>, Vec<f32>)> {
    let BatchNormParams {
        weight,
        bias,
        running_mean,
        running_var,
    } = p;
    let vals = |t: &Tensor| t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>();
    let (gamma, beta) = (vals(weight)?, vals(bias)?);
    let (mean, var) = (
        vals(running_mean.as_tensor())?,
        vals(running_var.as_tensor())?,
    );
    let scale: Vec<f32> = gamma
        .iter()
        .zip(&var)
        .map(|(&g, &v)| g * (1.0 / (v as f64 + eps).sqrt() as f32))
        .collect();
    let shift = beta
        .iter()
        .zip(&mean)
        .zip(&scale)
        .map(|((&b, &m), &a)| b - m * a)
        .collect();
    Ok((scale, shift))
}

/// PyTorch's running-statistics rule, with the unbiased batch variance.
fn update_running(
    running_mean: &Var,
    running_var: &Var,
    mean: &[f32],
    var: &[f32],
    count: usize,
    momentum: f64,
) -> Result<()> {
    let unbias = count as f64 / (count as f64 - 1.0).max(1.0);
    let blend = |old: Vec<f32>, new: &[f32], k: f64| -> Vec<f32> {
        old.iter()
            .zip(new)
            .map(|(&o, &b)| ((1.0 - momentum) * o as f64 + momentum * k * b as f64) as f32)
            .collect()
    };
    let dev = running_mean.device();
    let shape = running_mean.shape().clone();
    let rm = blend(
        running_mean.as_tensor().flatten_all()?.to_vec1()?,
        mean,
        1.0,
    );
    let rv = blend(
        running_var.as_tensor().flatten_all()?.to_vec1()?,
        var,
        unbias,
    );
    running_mean.set(&Tensor::from_vec(rm, shape.clone(), dev)?)?;
    running_var.set(&Tensor::from_vec(rv, shape, dev)?)?;
    Ok(())
}

/// Fused batch norm (+ ReLU) over `(x, gamma, beta)` with the statistics fixed at creation.
struct BatchNormOp {
    mean: Vec<f32>,
    invstd: Vec<f32>,
    /// Batch statistics: the gradient flows through mean and variance too.
    train: bool,
    relu: bool,
}

impl CustomOp3 for BatchNormOp {
    fn name(&self) -> &'static str {
        "hmreg-batch-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = storage_f32(self.name(), s1, l1)?;
        let gamma = storage_f32(self.name(), s2, l2)?;
        let beta = storage_f32(self.name(), s3, l3)?;
        let c = self.mean.len();
        if l1.dims().len() != 4 || l1.dims()[1] != c || gamma.len() != c || beta.len() != c {
            candle_core::bail!(
                "batch_norm: input {:?} does not match {c} channels (weight {}, bias {})",
                l1.dims(),
                gamma.len(),
                beta.len()
            );
        }
        let hw = l1.dims()[2] * l1.dims()[3];
        let scale: Vec<f32> = (0..c).map(|i| gamma[i] * self.invstd[i]).collect();
        let shift: Vec<f32> = (0..c).map(|i| beta[i] - self.mean[i] * scale[i]).collect();
        let y = batchnorm_cpu::affine(x, &scale, &shift, c, hw, self.relu);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, c, h, w) = x.dims4()?;
        let name = self.name();
        let need_dx = x.track_op();
        let (dx, dgamma, dbeta) = with_f32(name, x, |xs| {
            with_f32(name, res, |ys| {
                with_f32(name, grad, |dys| {
                    with_f32(name, gamma, |gs| {
                        Ok(batchnorm_cpu::backward(&batchnorm_cpu::BackwardArgs {
                            x: xs,
                            y: ys,
                            dy: dys,
                            mean: &self.mean,
                            invstd: &self.invstd,
                            gamma: gs,
                            n,
                            c,
                            hw: h * w,
                            relu: self.relu,
                            train: self.train,
                            need_dx,
                        }))
                    })
                })
            })
        })?;
        let dev = x.device();
        let dx = dx
            .map(|v| Tensor::from_vec(v, x.shape(), dev))
            .transpose()?;
        let dgamma = gamma
            .track_op()
            .then(|| Tensor::from_vec(dgamma, gamma.shape(), dev))
            .transpose()?;
        let dbeta = beta
            .track_op()
            .then(|| Tensor::from_vec(dbeta, beta.shape(), dev))
            .transpose()?;
        Ok((dx, dgamma, dbeta))
    }
}

/// Batch norm from Candle tensor ops (any device and dtype): the reference the fused op is tested
/// against, and the path for non-CPU devices.
pub fn batch_norm_reference(
    x: &Tensor,
    p: BatchNormParams,
    cfg: BatchNormConfig,
) -> Result<Tensor> {
    let BatchNormParams {
        weight,
        bias,
        running_mean,
        running_var,
    } = p;
    let BatchNormConfig {
        train,
        momentum,
        eps,
    } = cfg;
    let shape = (1, x.dim(1)?, 1, 1);
    let (centred, var) = if train {
        let (mean, centred, var, count) = batch_statistics(x, None)?;
        update_running_on_device(running_mean, running_var, &mean, &var, count, momentum)?;
        (centred, var)
    } else {
        (
            x.broadcast_sub(&running_mean.as_tensor().reshape(shape)?)?,
            running_var.as_tensor().reshape(shape)?,
        )
    };
    normalise(&centred, &var, weight, bias, eps)
}

/// Per-channel statistics over `(N, H, W)`, over every worker's shard when `reducer` is given
/// (equal shards): the mean, `x − mean`, the biased variance and the number of values. The mean
/// first, then the mean square deviation from it (also across workers: no E[x²] − E[x]²
/// cancellation).
fn batch_statistics(
    x: &Tensor,
    reducer: Option<&std::sync::Arc<dyn super::sync_stats::StatsReducer>>,
) -> Result<(Tensor, Tensor, Tensor, f64)> {
    let (n, _, h, w) = x.dims4()?;
    let channel_mean = |t: &Tensor| -> Result<Tensor> {
        let local = t
            .mean_keepdim(0)?
            .mean_keepdim(D::Minus1)?
            .mean_keepdim(D::Minus2)?;
        match reducer {
            Some(r) => super::sync_stats::mean_over_workers(r, &local),
            None => Ok(local),
        }
    };
    let mean = channel_mean(x)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = channel_mean(&centred.sqr()?)?;
    let workers = reducer.map_or(1, |r| r.world());
    Ok((mean, centred, var, (n * h * w * workers) as f64))
}

/// `centred · γ / sqrt(var + eps) + β`, per channel.
fn normalise(
    centred: &Tensor,
    var: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let shape = (1, centred.dim(1)?, 1, 1);
    let scale = weight
        .reshape(shape)?
        .broadcast_mul(&(var + eps)?.sqrt()?.recip()?)?;
    centred
        .broadcast_mul(&scale)?
        .broadcast_add(&bias.reshape(shape)?)
}

/// PyTorch's running-statistics rule on the statistics' device: `mean` and the biased `var` of
/// `count` values per channel, `(1, C, 1, 1)`.
fn update_running_on_device(
    running_mean: &Var,
    running_var: &Var,
    mean: &Tensor,
    var: &Tensor,
    count: f64,
    momentum: f64,
) -> Result<()> {
    let unbiased = (var.detach().flatten_all()? * (count / (count - 1.0).max(1.0)))?;
    let new_mean = ((running_mean.as_tensor() * (1.0 - momentum))?
        + (mean.detach().flatten_all()? * momentum)?)?;
    let new_var = ((running_var.as_tensor() * (1.0 - momentum))? + (unbiased * momentum)?)?;
    running_mean.set(&new_mean.to_dtype(DType::F32)?)?;
    running_var.set(&new_var.to_dtype(DType::F32)?)
}

/// Synchronised batch norm in training mode (+ ReLU): normalises with the mean and (biased)
/// variance of the global batch, all workers' shards together, through `reducer`; updates the
/// running statistics with them (unbiased over the global count). The workers' shards must be
/// of equal size. Any device; half-precision inputs are normalised in f32.
pub fn batch_norm_sync(
    x: &Tensor,
    p: BatchNormParams,
    cfg: BatchNormConfig,
    relu: bool,
    reducer: &std::sync::Arc<dyn super::sync_stats::StatsReducer>,
) -> Result<Tensor> {
    let xf = x.to_dtype(p.weight.dtype())?;
    let (mean, centred, var, count) = batch_statistics(&xf, Some(reducer))?;
    update_running_on_device(
        p.running_mean,
        p.running_var,
        &mean,
        &var,
        count,
        cfg.momentum,
    )?;
    let y = normalise(&centred, &var, p.weight, p.bias, cfg.eps)?;
    let y = if relu { super::relu(&y)? } else { y };
    y.to_dtype(x.dtype())
}
