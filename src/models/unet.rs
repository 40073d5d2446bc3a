//! fastai's DynamicUnet on the ResNet18 encoder, with fastai's defaults as `unet_learner` builds
//! it (blur=False, self_attention=False, y_range=None, last_cross=True, bottle=False, ReLU, and no
//! norm layers inside its ConvLayers, which therefore carry biases). Parameter names follow the
//! model's PyTorch state dict: `layers.1` (BN after the encoder), `layers.3.{0,1}.0` (middle
//! convs), `layers.4`..`layers.7` (UnetBlocks: `shuf.0.0`, `bn`, `conv1.0`, `conv2.0`),
//! `layers.8.0.0` (final PixelShuffle_ICNR), `layers.11.convpath.{0,1}.0` (ResBlock),
//! `layers.12.0` (1x1 output conv); the encoder keeps torchvision names.
//!
//! With 5 outputs at 256x256 this is 31,113,308 parameters, 11,166,912 of them in encoder convs
//! (frozen by `fine_tune`'s first phase; encoder BatchNorm stays trainable).

use candle_core::{Module, Tensor};

use super::describe::{Describer, NetDescription, Value, INPUT};
use super::layers::{BatchNorm2d, Builder, Conv2d, ConvConfig, Init, LayerInfo, BN_FASTAI};
use super::params::{ParamGroup, ParamStore};
use super::resnet::Resnet18;
use super::HeadKind;
use super::KeypointNet;
use crate::ops::{pixel_shuffle, shuffle_cat};
use crate::Result;

/// fastai's `apply_init(..., nn.init.kaiming_normal_)` on the middle convs, UnetBlock convs and
/// the ResBlock: N(0, 2 / fan_in), bias 0.
const INIT: Init = Init::KaimingNormalFanIn;

/// The decoder's 3x3 convolutions: stride 1, "same" padding, a bias, [`INIT`].
const CONV3: ConvConfig = ConvConfig::with_init(INIT).same(3);

/// fastai's `ConvLayer(ni, nf)` without norm, `Sequential(conv, ReLU)`: the 3x3 conv as `0` in
/// `b`'s scope (the caller applies the ReLU, fused: [`Conv2d::forward_relu`]).
fn conv_layer(b: &mut Builder, input: [usize; 3], nf: usize) -> Result<(Conv2d, [usize; 3])> {
    b.conv("0", input, nf, 3, CONV3)
}

/// fastai's `PixelShuffle_ICNR(ni, nf)` without norm: 1x1 conv to `4 nf` (ICNR init, bias 0),
/// ReLU, PixelShuffle(2).
struct PixelShuffleIcnr {
    conv: Conv2d,
}

impl PixelShuffleIcnr {
    /// `0.0` (the conv inside its ConvLayer) and `1` (the shuffle) in `b`'s scope.
    fn new(b: &mut Builder, input: [usize; 3], nf: usize) -> Result<(Self, [usize; 3])> {
        let cfg = ConvConfig::with_init(Init::Icnr(2));
        let (conv, s) = b.pp(0).conv("0", input, nf * 4, 1, cfg)?;
        let out = [nf, s[1] * 2, s[2] * 2];
        b.note("1", "PixelShuffle", out);
        Ok((PixelShuffleIcnr { conv }, out))
    }

    fn describe(&self, d: &mut Describer, x: Value) -> Result<Value> {
        let y = d.conv(x, &self.conv, true)?;
        d.pixel_shuffle(y, 2)
    }

    /// `cat([self.forward(x), rest], 1)` without the upsampled tensor as an intermediate.
    fn forward_cat(&self, x: &Tensor, rest: &Tensor) -> candle_core::Result<Tensor> {
        shuffle_cat(&self.conv.forward_relu(x)?, 2, rest)
    }
}

impl Module for PixelShuffleIcnr {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        pixel_shuffle(&self.conv.forward_relu(x)?, 2)
    }
}

/// fastai's UnetBlock: upsample, BN on the skip, concat, ReLU, two conv+ReLU.
struct UnetBlock {
    shuf: PixelShuffleIcnr,
    bn: BatchNorm2d,
    conv1: Conv2d,
    conv2: Conv2d,
}

impl UnetBlock {
    /// `shuf`, `bn`, `conv1`, `conv2` in `b`'s scope.
    fn new(
        b: &mut Builder,
        up_in: [usize; 3],
        skip: [usize; 3],
        final_div: bool,
    ) -> Result<(Self, [usize; 3])> {
        let (shuf, up) = PixelShuffleIcnr::new(&mut b.pp("shuf"), up_in, up_in[0] / 2)?;
        let bn = b.bn("bn", skip, BN_FASTAI)?;
        let ni = up[0] + skip[0];
        b.note("cat", "Concat", [ni, skip[1], skip[2]]);
        let nf = if final_div { ni } else { ni / 2 };
        let s = [ni, skip[1], skip[2]];
        let (conv1, s) = conv_layer(&mut b.pp("conv1"), s, nf)?;
        let (conv2, s) = conv_layer(&mut b.pp("conv2"), s, nf)?;
        Ok((
            UnetBlock {
                shuf,
                bn,
                conv1,
                conv2,
            },
            s,
        ))
    }

    fn forward_t(&self, x: &Tensor, skip: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        // fastai's relu(cat(up, bn(skip))) as cat(up, relu(bn(skip))): `up` is the shuffle of a
        // ReLU output, already non-negative, so the ReLU moves into the fused BatchNorm and the
        // graph stores no second full-size copy of the concatenation.
        let skip_bn = self.bn.forward_relu_t(skip, train)?;
        let (_, _, h, w) = skip.dims4()?;
        let (_, _, xh, xw) = x.dims4()?;
        let cat = if (2 * xh, 2 * xw) == (h, w) {
            self.shuf.forward_cat(x, &skip_bn)?
        } else {
            // fastai resizes (nearest) when odd sizes leave the shapes apart.
            let up = self.shuf.forward(x)?.upsample_nearest2d(h, w)?;
            Tensor::cat(&[up, skip_bn], 1)?
        };
        self.conv2.forward_relu(&self.conv1.forward_relu(&cat)?)
    }

    /// [`Self::forward_t`] in inference, as operations.
    fn describe(&self, d: &mut Describer, x: Value, skip: Value) -> Result<Value> {
        let skip_bn = d.bn(skip, &self.bn, true)?;
        let up = self.shuf.describe(d, x)?;
        if d.shape(up)[1..] != d.shape(skip)[1..] {
            // The nearest resize fastai applies to odd sizes; inputs are multiples of 32, so
            // only a model built for another input could get here.
            return Err(crate::Error::config(format!(
                "the UNet's upsampled {:?} does not meet its skip {:?}",
                d.shape(up),
                d.shape(skip)
            )));
        }
        let cat = d.concat(vec![up, skip_bn])?;
        let y = d.conv(cat, &self.conv1, true)?;
        d.conv(y, &self.conv2, true)
    }
}

/// The ResNet18 DynamicUnet with `points` output maps at input resolution.
pub struct UnetResnet18 {
    encoder: Resnet18,
    bn: BatchNorm2d,
    middle: [Conv2d; 2],
    blocks: Vec<UnetBlock>,
    shuf: PixelShuffleIcnr,
    res: [Conv2d; 2],
    head: Conv2d,
    rows: Vec<LayerInfo>,
    /// Input pixels per output pixel (1, or coarser through [`Self::with_heatmap_stride`]).
    stride: usize,
    head_kind: HeadKind,
}

impl UnetResnet18 {
    pub fn new(
        store: &mut ParamStore,
        width: f32,
        points: usize,
        input_size: usize,
        head_kind: HeadKind,
    ) -> Result<Self> {
        let mut rows = Vec::new();
        let mut b = Builder::new(store, &mut rows);
        let input = [3, input_size, input_size];
        // The encoder keeps torchvision's names at the root; the decoder is fastai's `layers`.
        let encoder = Resnet18::new(&mut b, input, width)?;
        let mut layers = b.pp("layers");
        layers.set_group(ParamGroup::Decoder);
        let [stem, l1, l2, l3, l4] = encoder.shapes;
        let bn = layers.bn("1", l4, BN_FASTAI)?;
        let mut middle = layers.pp(3);
        let (m0, s) = conv_layer(&mut middle.pp(0), l4, l4[0] * 2)?;
        let (m1, mut s) = conv_layer(&mut middle.pp(1), s, l4[0])?;
        // Skips are the encoder outputs just before each size change, lowest resolution first.
        let skips = [l3, l2, l1, stem];
        let mut blocks = Vec::with_capacity(4);
        for (i, &skip) in skips.iter().enumerate() {
            let final_div = i != skips.len() - 1;
            let (blk, s2) = UnetBlock::new(&mut layers.pp(4 + i), s, skip, final_div)?;
            s = s2;
            blocks.push(blk);
        }
        // The last block ends at half resolution: one more PixelShuffle_ICNR(ni) gets to full.
        let (shuf, s) = PixelShuffleIcnr::new(&mut layers.pp(8), s, s[0])?;
        let ni = s[0] + input[0];
        let s = [ni, s[1], s[2]];
        layers.note("10", "MergeLayer(dense)", s);
        // fastai's ResBlock: `convpath` is a Sequential of two ConvLayers.
        let mut res_block = layers.pp(11);
        let mut convpath = res_block.pp("convpath");
        let (r0, s) = conv_layer(&mut convpath.pp(0), s, ni)?;
        let (r1, s) = conv_layer(&mut convpath.pp(1), s, ni)?;
        layers.set_group(ParamGroup::Head);
        let maps = points * head_kind.channels_per_point();
        let head_cfg = ConvConfig::with_init(Init::FastaiLinear);
        let (head, _) = layers.pp(12).conv("0", s, maps, 1, head_cfg)?;
        Ok(UnetResnet18 {
            encoder,
            bn,
            middle: [m0, m1],
            blocks,
            shuf,
            res: [r0, r1],
            head,
            rows,
            stride: 1,
            head_kind,
        })
    }

    /// Maps at `stride` input pixels per map pixel (a power of two). The full-resolution maps are
    /// average-pooled: the last layer is a 1x1 convolution, so this equals pooling the features
    /// it reads, and the parameters stay as published.
    pub fn with_heatmap_stride(mut self, stride: usize) -> Self {
        self.stride = stride.max(1);
        if self.stride > 1 {
            let last = self.rows.last().map_or([0; 3], |r| r.output);
            let out = [last[0], last[1] / self.stride, last[2] / self.stride];
            self.rows.push(LayerInfo {
                name: "heatmap_pool".into(),
                kind: "AvgPool2d".into(),
                output: out,
                params: 0,
                trainable_frozen: 0,
            });
        }
        self
    }

    pub fn encoder(&self) -> &Resnet18 {
        &self.encoder
    }
}

impl KeypointNet for UnetResnet18 {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        super::check_input(x)?;
        let f = self.encoder.forward_t(x, train)?;
        let mut y = self.bn.forward_relu_t(&f.layer4, train)?;
        for c in &self.middle {
            y = c.forward_relu(&y)?;
        }
        for (blk, skip) in self
            .blocks
            .iter()
            .zip([&f.layer3, &f.layer2, &f.layer1, &f.stem])
        {
            y = blk.forward_t(&y, skip, train)?;
        }
        let y = self.shuf.forward_cat(&y, x)?;
        let r = self.res[1].forward(&self.res[0].forward_relu(&y)?)?;
        let y = crate::ops::add_relu(&r, &y)?;
        let y = self.head_kind.maps(self.head.forward(&y)?)?;
        if self.stride > 1 {
            y.avg_pool2d(self.stride)
        } else {
            Ok(y)
        }
    }

    fn stride(&self) -> usize {
        self.stride
    }

    fn layers(&self) -> Vec<LayerInfo> {
        self.rows.clone()
    }

    fn describe(&self, input_size: usize) -> Result<NetDescription> {
        let mut d = Describer::new(input_size);
        let [stem, l1, l2, l3, l4] = self.encoder.describe(&mut d, INPUT)?;
        let mut y = d.bn(l4, &self.bn, true)?;
        for c in &self.middle {
            y = d.conv(y, c, true)?;
        }
        for (blk, skip) in self.blocks.iter().zip([l3, l2, l1, stem]) {
            y = blk.describe(&mut d, y, skip)?;
        }
        let up = self.shuf.describe(&mut d, y)?;
        let y = d.concat(vec![up, INPUT])?;
        let r = d.conv(y, &self.res[0], true)?;
        let r = d.conv(r, &self.res[1], false)?;
        let y = d.add(r, y, true)?;
        let mut y = d.head(y, &self.head, self.head_kind)?;
        if self.stride > 1 {
            y = d.avg_pool(y, self.stride)?;
        }
        Ok(d.finish(y))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{ModuleT, Var};

    use super::*;

    /// Every UNet block against fastai's formulation, ReLU after the concatenation: the same
    /// values and the same gradients for the block's inputs.
    #[test]
    fn blocks_match_relu_after_concatenation() {
        let dev = crate::device::test_device();
        let mut store = ParamStore::new(&dev, 7);
        let net = UnetResnet18::new(&mut store, 0.0625, 3, 64, HeadKind::Binary).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 3, 64, 64), &dev).unwrap();
        let f = net.encoder.forward_t(&x, true).unwrap();
        let mut y = net.bn.forward_relu_t(&f.layer4, true).unwrap();
        for c in &net.middle {
            y = c.forward_relu(&y).unwrap();
        }
        for (blk, skip) in net
            .blocks
            .iter()
            .zip([&f.layer3, &f.layer2, &f.layer1, &f.stem])
        {
            let (yv, sv) = (
                Var::from_tensor(&y).unwrap(),
                Var::from_tensor(skip).unwrap(),
            );
            let ours = blk.forward_t(yv.as_tensor(), sv.as_tensor(), true).unwrap();
            let up = blk.shuf.forward(yv.as_tensor()).unwrap();
            let bn = blk.bn.forward_t(sv.as_tensor(), true).unwrap();
            let cat = Tensor::cat(&[up, bn], 1).unwrap().relu().unwrap();
            let want = blk
                .conv2
                .forward_relu(&blk.conv1.forward_relu(&cat).unwrap())
                .unwrap();
            let max_diff = |a: &Tensor, b: &Tensor| {
                (a - b)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            };
            assert!(max_diff(&ours, &want) < 1e-5);
            let w = Tensor::randn(0f32, 1.0, ours.dims(), &dev).unwrap();
            let grads = |t: &Tensor| (t * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let (g_ours, g_want) = (grads(&ours), grads(&want));
            for v in [&yv, &sv] {
                let (a, b) = (
                    g_ours.get(v.as_tensor()).unwrap(),
                    g_want.get(v.as_tensor()).unwrap(),
                );
                assert!(max_diff(a, b) < 1e-4, "gradient differs");
            }
            y = ours.detach();
        }
    }
}
