//! Units shared by the networks: the conv-BN(-ReLU) unit (ResNet's stem, HRNet's transitions,
//! fusions, stem and head) and the residual blocks of ResNet and HRNet (same structure and
//! parameter names in torchvision and the reference HRNet code).

use candle_core::{ModuleT, Tensor};

use super::describe::{Describer, Value};
use super::layers::{conv_bn, BatchNorm2d, BnInit, Builder, Conv2d, ConvConfig, Init, BN_TORCH};
use crate::Result;

/// The shape of a [`ConvBn`]: a square `kernel` with "same" padding (`kernel / 2`), no bias,
/// weights from `init`; a BatchNorm from `bn`; a ReLU after when `relu`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvBnConfig {
    pub kernel: usize,
    pub stride: usize,
    pub relu: bool,
    pub init: Init,
    pub bn: BnInit,
}

impl ConvBnConfig {
    /// A `kernel` x `kernel` conv at stride 1, PyTorch's BatchNorm init, ReLU.
    pub const fn new(kernel: usize, init: Init) -> Self {
        ConvBnConfig {
            kernel,
            stride: 1,
            relu: true,
            init,
            bn: BN_TORCH,
        }
    }

    pub const fn stride(self, stride: usize) -> Self {
        ConvBnConfig { stride, ..self }
    }

    /// Without the ReLU (the last unit before a residual sum or a fusion's addition).
    pub const fn no_relu(self) -> Self {
        ConvBnConfig {
            relu: false,
            ..self
        }
    }

    pub const fn bn(self, bn: BnInit) -> Self {
        ConvBnConfig { bn, ..self }
    }
}

/// `bn(conv(x))`, then ReLU when configured; in inference the BatchNorm folds into the
/// convolution ([`conv_bn`]).
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm2d,
    pub relu: bool,
}

impl ConvBn {
    /// The conv as `conv` and the BatchNorm as `bn` in `b`'s scope (torchvision's `conv1`,
    /// `bn1`), producing `c_out` channels from `input`; returns the unit and its output shape.
    pub fn new(
        b: &mut Builder,
        [conv, bn]: [&str; 2],
        input: [usize; 3],
        c_out: usize,
        cfg: ConvBnConfig,
    ) -> Result<(Self, [usize; 3])> {
        let conv_cfg = ConvConfig::with_init(cfg.init)
            .no_bias()
            .stride(cfg.stride)
            .same(cfg.kernel);
        let (conv, s) = b.conv(conv, input, c_out, cfg.kernel, conv_cfg)?;
        let bn = b.bn(bn, s, cfg.bn)?;
        let relu = cfg.relu;
        Ok((ConvBn { conv, bn, relu }, s))
    }

    /// Named as PyTorch's `Sequential(conv, bn[, relu])`: `0` and `1` in `b`'s scope.
    pub fn sequential(
        b: &mut Builder,
        input: [usize; 3],
        c_out: usize,
        cfg: ConvBnConfig,
    ) -> Result<(Self, [usize; 3])> {
        Self::new(b, ["0", "1"], input, c_out, cfg)
    }

    /// [`ModuleT::forward_t`] in inference, as operations.
    pub fn describe(&self, d: &mut Describer, x: Value) -> Result<Value> {
        d.conv_bn(x, &self.conv, &self.bn, self.relu)
    }
}

impl ModuleT for ConvBn {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        conv_bn(&self.conv, &self.bn, x, train, self.relu)
    }
}

/// The identity path of a residual block: a strided 1x1 conv + BN (`downsample.{0,1}`) when the
/// stride or the channels change, the input itself otherwise.
fn downsample(
    b: &mut Builder,
    input: [usize; 3],
    c_out: usize,
    stride: usize,
    unit: ConvBnConfig,
) -> Result<Option<ConvBn>> {
    if stride == 1 && input[0] == c_out {
        return Ok(None);
    }
    let cfg = ConvBnConfig {
        kernel: 1,
        ..unit.stride(stride).no_relu()
    };
    let (unit, _) = ConvBn::sequential(&mut b.pp("downsample"), input, c_out, cfg)?;
    Ok(Some(unit))
}

/// `relu(y + identity)`, the identity downsampled when the block has a downsample.
fn residual(
    y: &Tensor,
    x: &Tensor,
    downsample: &Option<ConvBn>,
    train: bool,
) -> candle_core::Result<Tensor> {
    let identity = match downsample {
        Some(ds) => ds.forward_t(x, train)?,
        None => x.clone(),
    };
    crate::ops::add_relu(y, &identity)
}

/// [`residual`] as operations.
fn describe_residual(
    d: &mut Describer,
    y: Value,
    x: Value,
    downsample: &Option<ConvBn>,
) -> Result<Value> {
    let identity = match downsample {
        Some(ds) => ds.describe(d, x)?,
        None => x,
    };
    d.add(y, identity, true)
}

/// `conv3x3-BN-ReLU-conv3x3-BN (+ identity or downsample) -ReLU`, expansion 1.
pub struct BasicBlock {
    conv1: ConvBn,
    conv2: ConvBn,
    downsample: Option<ConvBn>,
}

impl BasicBlock {
    /// `conv1`, `bn1`, `conv2`, `bn2`, `downsample.{0,1}` in `b`'s scope (the downsample, a
    /// strided 1x1 conv + BN, exists when stride or channels change).
    pub fn new(
        b: &mut Builder,
        input: [usize; 3],
        planes: usize,
        stride: usize,
        init: Init,
        bn: BnInit,
    ) -> Result<(Self, [usize; 3])> {
        let unit = ConvBnConfig::new(3, init).bn(bn);
        let (conv1, s) = ConvBn::new(b, ["conv1", "bn1"], input, planes, unit.stride(stride))?;
        let (conv2, s) = ConvBn::new(b, ["conv2", "bn2"], s, planes, unit.no_relu())?;
        let downsample = downsample(b, input, planes, stride, unit)?;
        Ok((
            BasicBlock {
                conv1,
                conv2,
                downsample,
            },
            s,
        ))
    }

    /// [`ModuleT::forward_t`] in inference, as operations.
    pub fn describe(&self, d: &mut Describer, x: Value) -> Result<Value> {
        let y = self.conv1.describe(d, x)?;
        let y = self.conv2.describe(d, y)?;
        describe_residual(d, y, x, &self.downsample)
    }
}

impl ModuleT for BasicBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let y = self.conv1.forward_t(x, train)?;
        let y = self.conv2.forward_t(&y, train)?;
        residual(&y, x, &self.downsample, train)
    }
}

/// `1x1 reduce - 3x3 - 1x1 expand (x4)` with BN after each, ReLU between, residual, ReLU.
pub struct Bottleneck {
    conv1: ConvBn,
    conv2: ConvBn,
    conv3: ConvBn,
    downsample: Option<ConvBn>,
}

impl Bottleneck {
    pub const EXPANSION: usize = 4;

    /// `conv1`..`conv3`, `bn1`..`bn3`, `downsample.{0,1}` in `b`'s scope.
    pub fn new(
        b: &mut Builder,
        input: [usize; 3],
        planes: usize,
        stride: usize,
        init: Init,
        bn: BnInit,
    ) -> Result<(Self, [usize; 3])> {
        let out_c = planes * Self::EXPANSION;
        let point = ConvBnConfig::new(1, init).bn(bn);
        let (conv1, s) = ConvBn::new(b, ["conv1", "bn1"], input, planes, point)?;
        let spatial = ConvBnConfig::new(3, init).bn(bn).stride(stride);
        let (conv2, s) = ConvBn::new(b, ["conv2", "bn2"], s, planes, spatial)?;
        let (conv3, s) = ConvBn::new(b, ["conv3", "bn3"], s, out_c, point.no_relu())?;
        let downsample = downsample(b, input, out_c, stride, point)?;
        Ok((
            Bottleneck {
                conv1,
                conv2,
                conv3,
                downsample,
            },
            s,
        ))
    }

    /// [`ModuleT::forward_t`] in inference, as operations.
    pub fn describe(&self, d: &mut Describer, x: Value) -> Result<Value> {
        let y = self.conv1.describe(d, x)?;
        let y = self.conv2.describe(d, y)?;
        let y = self.conv3.describe(d, y)?;
        describe_residual(d, y, x, &self.downsample)
    }
}

impl ModuleT for Bottleneck {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let y = self.conv1.forward_t(x, train)?;
        let y = self.conv2.forward_t(&y, train)?;
        let y = self.conv3.forward_t(&y, train)?;
        residual(&y, x, &self.downsample, train)
    }
}
