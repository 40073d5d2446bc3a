//! Parametrised building blocks (convolution, batch norm) registered in a [`ParamStore`] with the
//! reference libraries' init schemes, plus the per-layer rows that `hmreg summary` prints.
//!
//! Every convolution and batch norm goes through [`crate::ops::conv2d`] and
//! [`crate::ops::batch_norm`], so faster kernels replace Candle's without touching the models.

use candle_core::{Module, ModuleT, Tensor, Var};

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
        ConvConfig::with_init(Init::TorchDefault)
    }
}

/// Constructors in the manner of candle-nn's config structs, `const` so that a model can name
/// its usual convolution once (`const CONV3: ConvConfig = ConvConfig::with_init(INIT).same(3)`).
impl ConvConfig {
    /// PyTorch's `nn.Conv2d` defaults (stride 1, no padding, a bias) with weights from `init`.
    pub const fn with_init(init: Init) -> Self {
        ConvConfig {
            stride: 1,
            padding: 0,
            bias: true,
            init,
        }
    }

    pub const fn stride(self, stride: usize) -> Self {
        ConvConfig { stride, ..self }
    }

    pub const fn padding(self, padding: usize) -> Self {
        ConvConfig { padding, ..self }
    }

    /// "Same" padding for an odd `kernel` (`kernel / 2` on each side): the output keeps the
    /// input's size at stride 1 and halves it at stride 2.
    pub const fn same(self, kernel: usize) -> Self {
        self.padding(kernel / 2)
    }

    /// No bias: the layer is followed by a BatchNorm, whose shift would cancel it.
    pub const fn no_bias(self) -> Self {
        ConvConfig {
            bias: false,
            ..self
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

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        crate::ops::conv2d(
            x,
            &self.weight,
            self.bias.as_ref(),
            self.stride,
            self.padding,
            1,
        )
    }
}

impl Conv2d {
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

/// Batch statistics when `train` (and the layer's mode allows), running statistics otherwise.
impl ModuleT for BatchNorm2d {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.forward_act(x, train, false)
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

/// Creates layers in a store under one parameter group, recording a summary row for each, in
/// the manner of candle-nn's `VarBuilder`: a builder has a scope (a name prefix), [`Builder::pp`]
/// opens a sub-scope on the same store, and layers take their local name (`b.pp("layer1").pp(0)`
/// then `conv("conv1", ...)` makes `layer1.0.conv1.weight`). Parameters are created in call order,
/// which is the order the store's seeded generator draws them in.
pub struct Builder<'a> {
    store: &'a mut ParamStore,
    rows: &'a mut Vec<LayerInfo>,
    /// The scope's dotted prefix, empty at the root.
    prefix: String,
    group: ParamGroup,
}

impl<'a> Builder<'a> {
    /// A builder at the root scope (group: encoder) whose summary rows go to `rows`.
    pub fn new(store: &'a mut ParamStore, rows: &'a mut Vec<LayerInfo>) -> Self {
        Builder {
            store,
            rows,
            prefix: String::new(),
            group: ParamGroup::Encoder,
        }
    }

    /// A builder for the sub-scope `name` (candle-nn's `pp`, "push prefix"): same store, same
    /// summary, same group until it sets its own.
    pub fn pp(&mut self, name: impl ToString) -> Builder<'_> {
        let prefix = self.path(&name.to_string());
        Builder {
            store: &mut *self.store,
            rows: &mut *self.rows,
            prefix,
            group: self.group,
        }
    }

    /// The group of the parameters created from here on (in this scope and the scopes opened
    /// from it afterwards).
    pub fn set_group(&mut self, group: ParamGroup) {
        self.group = group;
    }

    /// The full name of `local` in this scope.
    fn path(&self, local: &str) -> String {
        if self.prefix.is_empty() {
            local.to_string()
        } else {
            [self.prefix.as_str(), local].join(".")
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
        let layer = self.path(name);
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
                        "{layer}: ICNR needs output channels ({c_out}) divisible by {sub}"
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
        let weight = self.add(&layer, "weight", weight, w_kind)?;
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
            let b = self.add(&layer, "bias", b, ParamKind::Bias)?;
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
            name: layer,
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
        let layer = self.path(name);
        let c = input[0];
        let w = self.store.constant(&[c], 1.0)?;
        let weight = self.add(&layer, "weight", w, ParamKind::Norm)?;
        let b = self.store.constant(&[c], init.bias)?;
        let bias = self.add(&layer, "bias", b, ParamKind::Norm)?;
        let running_mean = self.buffer(&layer, "running_mean", c, 0.0)?;
        let running_var = self.buffer(&layer, "running_var", c, 1.0)?;
        self.rows.push(LayerInfo {
            name: layer,
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

    /// Registers `layer.tensor` (a full layer name, then the tensor's own) in the store.
    fn add(&mut self, layer: &str, tensor: &str, t: Tensor, kind: ParamKind) -> Result<Tensor> {
        self.store
            .add(&[layer, tensor].join("."), t, self.group, kind)
    }

    fn buffer(&mut self, layer: &str, tensor: &str, c: usize, value: f32) -> Result<Var> {
        let name = [layer, tensor].join(".");
        let t = self.store.constant(&[c], value)?;
        self.store.add(&name, t, self.group, ParamKind::Buffer)?;
        let p = self
            .store
            .get(&name)
            .ok_or_else(|| crate::Error::Msg(format!("buffer `{name}` vanished")))?;
        Ok(p.var.clone())
    }

    /// Records a parameter-free layer (pooling, shuffle, resize, concatenation) in the summary.
    pub fn note(&mut self, name: &str, kind: &str, output: [usize; 3]) {
        self.rows.push(LayerInfo {
            name: self.path(name),
            kind: kind.to_string(),
            output,
            params: 0,
            trainable_frozen: 0,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scopes prefix every name a layer registers (parameters, buffers, summary rows), nest,
    /// and carry the group of the scope they were opened from.
    #[test]
    fn scoped_builders_prefix_names_and_keep_creation_order() {
        let dev = crate::device::test_device();
        let mut store = ParamStore::new(&dev, 0);
        let mut rows = Vec::new();
        let mut b = Builder::new(&mut store, &mut rows);
        let cfg = ConvConfig::with_init(Init::TorchDefault).no_bias().same(3);
        let (_, s) = b.conv("conv1", [3, 8, 8], 4, 3, cfg).unwrap();
        assert_eq!(s, [4, 8, 8], "same padding keeps the size at stride 1");
        b.set_group(ParamGroup::Head);
        let mut layer = b.pp("layer1");
        let (_, s) = layer.pp(0).conv("conv", s, 2, 3, cfg.stride(2)).unwrap();
        assert_eq!(s, [2, 4, 4], "same padding halves the size at stride 2");
        layer.pp(0).bn("bn", s, BN_TORCH).unwrap();
        layer.note("pool", "MaxPool2d", s);
        let names: Vec<&str> = store.params().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "conv1.weight",
                "layer1.0.conv.weight",
                "layer1.0.bn.weight",
                "layer1.0.bn.bias",
                "layer1.0.bn.running_mean",
                "layer1.0.bn.running_var",
            ]
        );
        let groups: Vec<ParamGroup> = store.params().iter().map(|p| p.group).collect();
        assert_eq!(groups[0], ParamGroup::Encoder);
        assert!(groups[1..].iter().all(|&g| g == ParamGroup::Head));
        let row_names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            row_names,
            ["conv1", "layer1.0.conv", "layer1.0.bn", "layer1.pool"]
        );
    }
}
