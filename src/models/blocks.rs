//! Residual blocks shared by ResNet and HRNet (same structure and parameter names in torchvision
//! and the reference HRNet code).

use candle_core::Tensor;

use super::describe::{Describer, Value};
use super::layers::{conv_bn, BatchNorm2d, BnInit, Builder, Conv2d, ConvConfig, Init};
use crate::Result;

/// `conv3x3-BN-ReLU-conv3x3-BN (+ identity or downsample) -ReLU`, expansion 1.
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    downsample: Option<(Conv2d, BatchNorm2d)>,
}

impl BasicBlock {
    /// `name.conv1`, `name.bn1`, `name.conv2`, `name.bn2`, `name.downsample.{0,1}` (the
    /// downsample, a strided 1x1 conv + BN, exists when stride or channels change).
    pub fn new(
        b: &mut Builder,
        name: &str,
        input: [usize; 3],
        planes: usize,
        stride: usize,
        init: Init,
        bn: BnInit,
    ) -> Result<(Self, [usize; 3])> {
        let (conv1, s) = b.conv(
            &format!("{name}.conv1"),
            input,
            planes,
            3,
            ConvConfig {
                stride,
                padding: 1,
                bias: false,
                init,
            },
        )?;
        let bn1 = b.bn(&format!("{name}.bn1"), s, bn)?;
        let (conv2, s) = b.conv(
            &format!("{name}.conv2"),
            s,
            planes,
            3,
            ConvConfig {
                stride: 1,
                padding: 1,
                bias: false,
                init,
            },
        )?;
        let bn2 = b.bn(&format!("{name}.bn2"), s, bn)?;
        let downsample = if stride != 1 || input[0] != planes {
            let (c, s2) = b.conv(
                &format!("{name}.downsample.0"),
                input,
                planes,
                1,
                ConvConfig {
                    stride,
                    padding: 0,
                    bias: false,
                    init,
                },
            )?;
            let n = b.bn(&format!("{name}.downsample.1"), s2, bn)?;
            Some((c, n))
        } else {
            None
        };
        Ok((
            BasicBlock {
                conv1,
                bn1,
                conv2,
                bn2,
                downsample,
            },
            s,
        ))
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let y = conv_bn(&self.conv1, &self.bn1, x, train, true)?;
        let y = conv_bn(&self.conv2, &self.bn2, &y, train, false)?;
        let identity = match &self.downsample {
            Some((c, n)) => conv_bn(c, n, x, train, false)?,
            None => x.clone(),
        };
        crate::ops::add_relu(&y, &identity)
    }

    /// [`Self::forward_t`] in inference, as operations.
    pub fn describe(&self, d: &mut Describer, x: Value) -> Result<Value> {
        let y = d.conv_bn(x, &self.conv1, &self.bn1, true)?;
        let y = d.conv_bn(y, &self.conv2, &self.bn2, false)?;
        let identity = match &self.downsample {
            Some((c, n)) => d.conv_bn(x, c, n, false)?,
            None => x,
        };
        d.add(y, identity, true)
    }
}

/// `1x1 reduce - 3x3 - 1x1 expand (x4)` with BN after each, ReLU between, residual, ReLU.
pub struct Bottleneck {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    conv3: Conv2d,
    bn3: BatchNorm2d,
    downsample: Option<(Conv2d, BatchNorm2d)>,
}

impl Bottleneck {
    pub const EXPANSION: usize = 4;

    pub fn new(
        b: &mut Builder,
        name: &str,
        input: [usize; 3],
        planes: usize,
        stride: usize,
        init: Init,
        bn: BnInit,
    ) -> Result<(Self, [usize; 3])> {
        let out_c = planes * Self::EXPANSION;
        let (conv1, s) = b.conv(
            &format!("{name}.conv1"),
            input,
            planes,
            1,
            ConvConfig {
                stride: 1,
                padding: 0,
                bias: false,
                init,
            },
        )?;
        let bn1 = b.bn(&format!("{name}.bn1"), s, bn)?;
        let (conv2, s) = b.conv(
            &format!("{name}.conv2"),
            s,
            planes,
            3,
            ConvConfig {
                stride,
                padding: 1,
                bias: false,
                init,
            },
        )?;
        let bn2 = b.bn(&format!("{name}.bn2"), s, bn)?;
        let (conv3, s) = b.conv(
            &format!("{name}.conv3"),
            s,
            out_c,
            1,
            ConvConfig {
                stride: 1,
                padding: 0,
                bias: false,
                init,
            },
        )?;
        let bn3 = b.bn(&format!("{name}.bn3"), s, bn)?;
        let downsample = if stride != 1 || input[0] != out_c {
            let (c, s2) = b.conv(
                &format!("{name}.downsample.0"),
                input,
                out_c,
                1,
                ConvConfig {
                    stride,
                    padding: 0,
                    bias: false,
                    init,
                },
            )?;
            let n = b.bn(&format!("{name}.downsample.1"), s2, bn)?;
            Some((c, n))
        } else {
            None
        };
        Ok((
            Bottleneck {
                conv1,
                bn1,
                conv2,
                bn2,
                conv3,
                bn3,
                downsample,
            },
            s,
        ))
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let y = conv_bn(&self.conv1, &self.bn1, x, train, true)?;
        let y = conv_bn(&self.conv2, &self.bn2, &y, train, true)?;
        let y = conv_bn(&self.conv3, &self.bn3, &y, train, false)?;
        let identity = match &self.downsample {
            Some((c, n)) => conv_bn(c, n, x, train, false)?,
            None => x.clone(),
        };
        crate::ops::add_relu(&y, &identity)
    }

    /// [`Self::forward_t`] in inference, as operations.
    pub fn describe(&self, d: &mut Describer, x: Value) -> Result<Value> {
        let y = d.conv_bn(x, &self.conv1, &self.bn1, true)?;
        let y = d.conv_bn(y, &self.conv2, &self.bn2, true)?;
        let y = d.conv_bn(y, &self.conv3, &self.bn3, false)?;
        let identity = match &self.downsample {
            Some((c, n)) => d.conv_bn(x, c, n, false)?,
            None => x,
        };
        d.add(y, identity, true)
    }
}
