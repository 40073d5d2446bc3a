//! ResNet18 encoder with torchvision/timm parameter names (`conv1`, `bn1`, `layer1.0.conv1`,
//! `layer2.0.downsample.{0,1}`, ...), train-mode BatchNorm, and its skip features exposed.
//! Random init follows torchvision: convs kaiming_normal(fan_out, relu), BN weight 1 bias 0.

use candle_core::{ModuleT, Tensor};

use super::blocks::{BasicBlock, ConvBn, ConvBnConfig};
use super::describe::{Describer, Value};
use super::layers::{scaled, Builder, Init, BN_TORCH};
use super::params::ParamGroup;
use crate::Result;

const INIT: Init = Init::KaimingNormalFanOut;

/// The encoder's intermediate outputs, highest resolution first.
pub struct ResnetFeatures {
    /// After conv1-bn1-ReLU: `(N, 64, H/2, W/2)`.
    pub stem: Tensor,
    /// layer1 `(N, 64, H/4, W/4)`, layer2 `(N, 128, H/8)`, layer3 `(N, 256, H/16)`.
    pub layer1: Tensor,
    pub layer2: Tensor,
    pub layer3: Tensor,
    /// layer4 `(N, 512, H/32, W/32)`.
    pub layer4: Tensor,
}

pub struct Resnet18 {
    /// `conv1`, `bn1`: 7x7/s2 conv, BN, ReLU.
    stem: ConvBn,
    layers: Vec<Vec<BasicBlock>>,
    /// Output shapes `[C, H, W]` of stem, layer1..layer4 for the configured input.
    pub shapes: [[usize; 3]; 5],
}

impl Resnet18 {
    /// Registers the encoder (group: encoder) in `b`'s scope for `input = [3, H, W]`; `width`
    /// multiplies the channel counts (1.0 = 64/128/256/512).
    pub fn new(b: &mut Builder, input: [usize; 3], width: f32) -> Result<Self> {
        b.set_group(ParamGroup::Encoder);
        let base = scaled(64, width);
        let stem_cfg = ConvBnConfig::new(7, INIT).stride(2);
        let (stem_unit, stem) = ConvBn::new(b, ["conv1", "bn1"], input, base, stem_cfg)?;
        let mut s = [
            base,
            super::layers::out_size(stem[1], 3, 2, 1),
            super::layers::out_size(stem[2], 3, 2, 1),
        ];
        b.note("maxpool", "MaxPool2d", s);
        let mut shapes = [stem; 5];
        let mut layers = Vec::with_capacity(4);
        for l in 0..4 {
            let planes = base << l;
            let mut layer = b.pp(format!("layer{}", l + 1));
            let mut blocks = Vec::with_capacity(2);
            for k in 0..2 {
                let stride = if l > 0 && k == 0 { 2 } else { 1 };
                let (blk, s2) =
                    BasicBlock::new(&mut layer.pp(k), s, planes, stride, INIT, BN_TORCH)?;
                s = s2;
                blocks.push(blk);
            }
            shapes[l + 1] = s;
            layers.push(blocks);
        }
        Ok(Resnet18 {
            stem: stem_unit,
            layers,
            shapes,
        })
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<ResnetFeatures> {
        let stem = self.stem.forward_t(x, train)?;
        let mut y = crate::ops::max_pool2d(&stem, 3, 2, 1)?;
        let mut outs = Vec::with_capacity(4);
        for blocks in &self.layers {
            for blk in blocks {
                y = blk.forward_t(&y, train)?;
            }
            outs.push(y.clone());
        }
        let mut it = outs.into_iter();
        let mut next = || {
            it.next()
                .ok_or_else(|| candle_core::Error::Msg("resnet: missing layer".into()))
        };
        Ok(ResnetFeatures {
            stem,
            layer1: next()?,
            layer2: next()?,
            layer3: next()?,
            layer4: next()?,
        })
    }

    /// [`Self::forward_t`] in inference, as operations: the values of stem, layer1..layer4.
    pub fn describe(&self, d: &mut Describer, x: Value) -> Result<[Value; 5]> {
        let stem = self.stem.describe(d, x)?;
        let mut y = d.max_pool(stem, 3, 2, 1);
        let mut outs = [stem; 5];
        for (l, blocks) in self.layers.iter().enumerate() {
            for blk in blocks {
                y = blk.describe(d, y)?;
            }
            outs[l + 1] = y;
        }
        Ok(outs)
    }
}
