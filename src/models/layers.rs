//! Parametrised building blocks (convolution, batch norm) registered in a [`ParamStore`] with the
//! reference libraries' init schemes, plus the per-layer rows that `hmreg summary` prints.
//!
//! Every convolution and batch norm goes through [`crate::ops::conv2d`] and
//! [`crate::ops::batch_norm`], so faster kernels replace Candle's without touching the models.

use candle_core::{Tensor, Var};

use super::params::{ParamGroup, ParamKind, ParamStore};
use super::BatchNormMode;
use crate::ops::{BatchNormConfig, BatchNormParams};
use crate::Result;

/// PyTorch's BatchNorm2d defaults, which every reference model here uses.
pub const BN_MOMENTUM: f64 = 0.1;
pub const BN_EPS: f64 = 1e-5;

/// One row of a model summary: a layer, the shape it outputs for one image, and its parameters.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerInfo {
    /// Parameter-name prefix (e.g. `layer1.0.conv1`) or a descriptive name for parameter-free ops.
    pub name: String,
    /// Layer type, as PyTorch would name it (`Conv2d`, `BatchNorm2d`, `MaxPool2d`, ...).
    pub kind: String,
    /// Output shape `[C, H, W]` for one image.
    pub output: [usize; 3],
    /// Number of parameter values (buffers excluded).
    pub params: usize,
    /// How many of them stay trainable while the encoder is frozen.
    pub trainable_frozen: usize,
}

/// Weight-init schemes of the reference libraries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// PyTorch's `Conv2d.reset_parameters`: kaiming_uniform(a = sqrt 5), i.e. U(+-1/sqrt(fan_in)),
    /// bias U(+-1/sqrt(fan_in)).
    TorchDefault,
    /// fastai `init_linear` for a layer without activation (the UNet's last 1x1 conv): PyTorch's
    /// default weight, bias N(0, 0.01).
    FastaiLinear,
    /// torchvision ResNet: kaiming_normal(mode = fan_out, relu): N(0, 2 / fan_out); bias 0.
    KaimingNormalFanOut,
    /// fastai `init_default(m, kaiming_normal_)`: N(0, 2 / fan_in), bias 0.
    KaimingNormalFanIn,
    /// fastai ICNR for a conv feeding PixelShuffle(scale): a kaiming_normal (fan_in) kernel for
    /// `C_out / scale^2` channels, each repeated for the `scale^2` sub-pixels it becomes; bias 0.
    Icnr(usize),
    /// HRNet's `init_weights`: N(0, std^2); bias 0.
    Normal(f64),
}

/// Batch-norm init: weight 1, bias `bias` (0 in PyTorch/torchvision/HRNet, 1e-3 in fastai).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BnInit {
    pub bias: f32,
}

pub const BN_TORCH: BnInit = BnInit { bias: 0.0 };
/// fastai's `BatchNorm()` helper fills the bias with 1e-3.
pub const BN_FASTAI: BnInit = BnInit { bias: 1e-3 };

/// How [`Builder::conv`] makes a convolution, beyond its channels and kernel size (in the manner
/// of candle-nn's `Conv2dConfig`). The default is PyTorch's `nn.Conv2d`: stride 1, no padding,
/// a bias, PyTorch's init.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvConfig {
    pub stride: usize,
    /// Symmetric zero padding on each side.
    pub padding: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
    /// Init of the weight (and bias).
    pub init: Init,
}

impl Default for ConvConfig {
    fn default() -> Self {
        ConvConfig {
            stride: 1,
            padding: 0,
            bias: true,
            init: Init::TorchDefault,
        }
    }
}

/// A 2-D convolution with symmetric zero padding.
#[derive(Clone, Debug)]
pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub stride: usize,
    pub padding: usize,
}

impl Conv2d {
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        crate::ops::conv2d(
            x,
            &self.weight,
            self.bias.as_ref(),
            self.stride,
            self.padding,
            1,
        )
    }

    /// The convolution followed by a ReLU, fused on the CPU.
    pub fn forward_relu(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        crate::ops::conv2d_relu(
            x,
            &self.weight,
            self.bias.as_ref(),
            self.stride,
            self.padding,
        )
    }
}

/// BatchNorm2d with running statistics held as buffers in the store.
#[derive(Clone, Debug)]
pub struct BatchNorm2d {
    pub weight: Tensor,
    pub bias: Tensor,
    pub running_mean: Var,
    pub running_var: Var,
    /// What training normalises with (see [`BatchNormMode`]).
    pub mode: BatchNormMode,
}

impl BatchNorm2d {
    /// The layer's tensors, as the batch-norm ops take them.
    pub fn params(&self) -> BatchNormParams<'_> {
        BatchNormParams {
            weight: &self.weight,
            bias: &self.bias,
            running_mean: &self.running_mean,
            running_var: &self.running_var,
        }
    }

    /// PyTorch's momentum and eps, in training or inference mode.
    fn config(train: bool) -> BatchNormConfig {
        BatchNormConfig {
            train,
            momentum: BN_MOMENTUM,
            eps: BN_EPS,
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.forward_act(x, train, false)
    }

    /// `relu(bn(x))`, fused into one op on the CPU.
    pub fn forward_relu_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.forward_act(x, train, true)
    }

    fn forward_act(&self, x: &Tensor, train: bool, relu: bool) -> candle_core::Result<Tensor> {
        let train = train && self.mode != BatchNormMode::Running;
        // Synchronised statistics when the data-parallel worker running this step installed a
        // reducer; alone, a synchronised BatchNorm is a plain one.
        if train && self.mode == BatchNormMode::Sync {
            if let Some(reducer) = crate::ops::sync_stats::current() {
                let cfg = Self::config(true);
                return crate::ops::batch_norm_sync(x, self.params(), cfg, relu, &reducer);
            }
        }
        let cfg = Self::config(train);
        if relu {
            crate::ops::batch_norm_relu(x, self.params(), cfg)
        } else {
            crate::ops::batch_norm(x, self.params(), cfg)
        }
    }
}

/// `bn(conv(x))`, followed by a ReLU when `relu`. In inference, for an input that needs no
/// gradient, the BatchNorm (and the conv's bias) is folded into the convolution's output stage:
/// one op instead of two passes and an intermediate tensor ([`crate::ops::conv2d_affine`]).
pub fn conv_bn(
    conv: &Conv2d,
    bn: &BatchNorm2d,
    x: &Tensor,
    train: bool,
    relu: bool,
) -> candle_core::Result<Tensor> {
    // The fold reads the BatchNorm's statistics on the host: only for the CPU kernels (on a GPU
    // that would be a device-to-host copy per layer and forward pass).
    if !train
        && !x.track_op()
        && crate::ops::conv::runs_on_cpu_kernels(x, &conv.weight, conv.stride, 1)
    {
        let (scale, mut shift) = crate::ops::inference_scale_shift(bn.params(), BN_EPS)?;
        if let Some(b) = &conv.bias {
            let b = b.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
            for ((s, &a), &bc) in shift.iter_mut().zip(&scale).zip(&b) {
                *s += bc * a;
            }
        }
        return crate::ops::conv2d_affine(
            x,
            &conv.weight,
            scale,
            shift,
            conv.stride,
            conv.padding,
            relu,
        );
    }
    let y = conv.forward(x)?;
    if relu {
        bn.forward_relu_t(&y, train)
    } else {
        bn.forward_t(&y, train)
    }
}

/// Channel count scaled by a width multiplier (at least 1), for thin test models.
pub fn scaled(channels: usize, width: f32) -> usize {
    ((channels as f32 * width).round() as usize).max(1)
}

/// Output size of a convolution or pooling along one axis.
pub fn out_size(size: usize, kernel: usize, stride: usize, padding: usize) -> usize {
    (size + 2 * padding - kernel) / stride + 1
}

/// Creates layers in a store under one parameter group, recording a summary row for each.
pub struct Builder<'a> {
    pub store: &'a mut ParamStore,
    pub group: ParamGroup,
    pub rows: Vec<LayerInfo>,
}

impl<'a> Builder<'a> {
    pub fn new(store: &'a mut ParamStore) -> Self {
        Builder {
            store,
            group: ParamGroup::Encoder,
            rows: Vec::new(),
        }
    }

    fn trainable_frozen(&self, kind: ParamKind) -> bool {
        kind == ParamKind::Norm || self.group != ParamGroup::Encoder
    }

    /// Adds a conv `name.weight` (and `name.bias`) of `c_out` square kernels of side `kernel`
    /// taking `input = [C, H, W]`; returns it with its output shape.
    pub fn conv(
        &mut self,
        name: &str,
        input: [usize; 3],
        c_out: usize,
        kernel: usize,
        cfg: ConvConfig,
    ) -> Result<(Conv2d, [usize; 3])> {
        let ConvConfig {
            stride,
            padding,
            bias,
            init,
        } = cfg;
        let c_in = input[0];
        let shape = [c_out, c_in, kernel, kernel];
        let fan_in = (c_in * kernel * kernel) as f64;
        let fan_out = (c_out * kernel * kernel) as f64;
        let weight = match init {
            Init::TorchDefault | Init::FastaiLinear => {
                self.store.uniform(&shape, 1.0 / fan_in.sqrt())?
            }
            Init::KaimingNormalFanOut => self.store.normal(&shape, (2.0 / fan_out).sqrt())?,
            Init::KaimingNormalFanIn => self.store.normal(&shape, (2.0 / fan_in).sqrt())?,
            Init::Normal(std) => self.store.normal(&shape, std)?,
            Init::Icnr(scale) => {
                let sub = scale * scale;
                if !c_out.is_multiple_of(sub) {
                    return Err(crate::Error::config(format!(
                        "{name}: ICNR needs output channels ({c_out}) divisible by {sub}"
                    )));
                }
                let base = self
                    .store
                    .normal(&[c_out / sub, c_in, kernel, kernel], (2.0 / fan_in).sqrt())?;
                // Output channel `o` feeds sub-pixel `o % sub` of channel `o / sub` in
                // PixelShuffle, so all sub-pixels of a channel start with the same kernel.
                let idx: Vec<u32> = (0..c_out as u32).map(|o| o / sub as u32).collect();
                let idx = Tensor::new(idx.as_slice(), self.store.device())?;
                base.index_select(&idx, 0)?
            }
        };
        let w_kind = ParamKind::Weight;
        let weight = self
            .store
            .add(&format!("{name}.weight"), weight, self.group, w_kind)?;
        let mut n_params = weight.elem_count();
        let mut n_frozen_trainable = if self.trainable_frozen(w_kind) {
            n_params
        } else {
            0
        };
        let bias = if bias {
            let b = match init {
                Init::TorchDefault => self.store.uniform(&[c_out], 1.0 / fan_in.sqrt())?,
                Init::FastaiLinear => self.store.normal(&[c_out], 0.01)?,
                _ => self.store.constant(&[c_out], 0.0)?,
            };
            let b = self
                .store
                .add(&format!("{name}.bias"), b, self.group, ParamKind::Bias)?;
            n_params += c_out;
            if self.trainable_frozen(ParamKind::Bias) {
                n_frozen_trainable += c_out;
            }
            Some(b)
        } else {
            None
        };
        let output = [
            c_out,
            out_size(input[1], kernel, stride, padding),
            out_size(input[2], kernel, stride, padding),
        ];
        self.rows.push(LayerInfo {
            name: name.to_string(),
            kind: "Conv2d".into(),
            output,
            params: n_params,
            trainable_frozen: n_frozen_trainable,
        });
        Ok((
            Conv2d {
                weight,
                bias,
                stride,
                padding,
            },
            output,
        ))
    }

    /// Adds BatchNorm2d parameters `name.{weight,bias}` and buffers `name.{running_mean,running_var}`.
    pub fn bn(&mut self, name: &str, input: [usize; 3], init: BnInit) -> Result<BatchNorm2d> {
        let c = input[0];
        let g = self.group;
        let w = self.store.constant(&[c], 1.0)?;
        let weight = self
            .store
            .add(&format!("{name}.weight"), w, g, ParamKind::Norm)?;
        let b = self.store.constant(&[c], init.bias)?;
        let bias = self
            .store
            .add(&format!("{name}.bias"), b, g, ParamKind::Norm)?;
        let running_mean = self.buffer(&format!("{name}.running_mean"), c, 0.0)?;
        let running_var = self.buffer(&format!("{name}.running_var"), c, 1.0)?;
        self.rows.push(LayerInfo {
            name: name.to_string(),
            kind: "BatchNorm2d".into(),
            output: input,
            params: 2 * c,
            trainable_frozen: 2 * c,
        });
        Ok(BatchNorm2d {
            weight,
            bias,
            running_mean,
            running_var,
            mode: self.store.batch_norm_mode(),
        })
    }

    fn buffer(&mut self, name: &str, c: usize, value: f32) -> Result<Var> {
        let t = self.store.constant(&[c], value)?;
        self.store.add(name, t, self.group, ParamKind::Buffer)?;
        let p = self
            .store
            .get(name)
            .ok_or_else(|| crate::Error::Msg(format!("buffer `{name}` vanished")))?;
        Ok(p.var.clone())
    }

    /// Records a parameter-free layer (pooling, shuffle, resize, concatenation) in the summary.
    pub fn note(&mut self, name: &str, kind: &str, output: [usize; 3]) {
        self.rows.push(LayerInfo {
            name: name.to_string(),
            kind: kind.to_string(),
            output,
            params: 0,
            trainable_frozen: 0,
        });
    }
}
