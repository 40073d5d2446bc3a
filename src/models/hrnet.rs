//! HRNet (W18, W32) as in the reference HRNet code used by the randomized-rounding paper, with the
//! reference parameter names (`conv1`, `layer1.0.conv1`, `transition1.0.0`,
//! `stage2.0.branches.0.0.conv1`, `stage2.0.fuse_layers.1.0.0.0`, ...) so its checkpoints load by
//! name, and the binary keypoint head (`head.0`, `head.1`, `head.3`).
//!
//! Stem: two 3x3/s2 convs (3->64->64) with BN+ReLU. layer1: 4 Bottlenecks (64->256). Stages 2, 3, 4:
//! 1, 4, 3 modules of 2, 3, 4 branches with 4 BasicBlocks each, widths C, 2C, 4C, 8C. Fusion sums
//! every branch into every target (1x1 conv + BN + nearest upsampling from lower resolutions,
//! chains of 3x3/s2 conv + BN from higher ones, ReLU between but not after the last), then ReLU.
//! The output resizes all branches to 1/4 resolution (bilinear, align_corners=False) and
//! concatenates them (15C channels). Init follows `init_weights`: convs N(0, 0.001²), BN 1/0.

use candle_core::{Module, ModuleT, Tensor};

use super::blocks::{BasicBlock, Bottleneck, ConvBn, ConvBnConfig};
use super::describe::{Describer, NetDescription, Value, INPUT};
use super::layers::{Builder, Conv2d, ConvConfig, Init, LayerInfo, BN_TORCH};
use super::params::{ParamGroup, ParamStore};
use super::{HeadKind, KeypointNet};
use crate::Result;

/// HRNet's `init_weights`: every conv ~ N(0, 0.001²).
const INIT: Init = Init::Normal(0.001);

/// HRNet's head convolutions: 1x1, no bias, [`INIT`].
const CONV: ConvConfig = ConvConfig::with_init(INIT).no_bias();

/// 3x3, stride 1, ReLU: the stem's second conv's shape at stride 1, a transition that changes
/// the channels only.
const SAME: ConvBnConfig = ConvBnConfig::new(3, INIT);
/// 3x3, stride 2, ReLU: a downsampling step (the stem, new branches, fusions from above).
const DOWN: ConvBnConfig = SAME.stride(2);
/// 1x1, stride 1, no ReLU: a fusion step from a lower resolution (before upsampling).
const UP: ConvBnConfig = ConvBnConfig::new(1, INIT).no_relu();

/// Widths of an HRNet variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HrnetWidths {
    /// Stem channels and layer1 bottleneck planes (64 in every published variant).
    pub stem: usize,
    /// Width of the highest-resolution branch: 18 for W18, 32 for W32.
    pub base: usize,
}

impl HrnetWidths {
    /// Published width `base` (18 or 32) scaled by a width multiplier (1.0 = published).
    pub fn scaled(base: usize, width: f32) -> Self {
        HrnetWidths {
            stem: super::layers::scaled(64, width),
            base: super::layers::scaled(base, width),
        }
    }

    pub fn branches(&self, n: usize) -> Vec<usize> {
        (0..n).map(|i| self.base << i).collect()
    }

    /// Channels of the concatenated output.
    pub fn out_channels(&self) -> usize {
        self.branches(4).iter().sum()
    }
}

fn describe_chain(layers: &[ConvBn], d: &mut Describer, x: Value) -> Result<Value> {
    let mut y = x;
    for l in layers {
        y = l.describe(d, y)?;
    }
    Ok(y)
}

fn chain(layers: &[ConvBn], x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
    let mut y = x.clone();
    for l in layers {
        y = l.forward_t(&y, train)?;
    }
    Ok(y)
}

/// How branch `j` reaches target `i` in a fusion.
enum Fuse {
    Identity,
    /// From a lower resolution: 1x1 conv + BN, then nearest upsampling by `factor`.
    Up {
        step: ConvBn,
        factor: usize,
    },
    /// From a higher resolution: 3x3/s2 conv + BN steps.
    Down(Vec<ConvBn>),
}

struct HrModule {
    branches: Vec<Vec<BasicBlock>>,
    fuse: Vec<Vec<Fuse>>,
}

impl HrModule {
    /// `branches.i.k` (BasicBlocks) and `fuse_layers.i.j` in `b`'s scope.
    fn new(
        b: &mut Builder,
        shapes: &[[usize; 3]],
        blocks: usize,
    ) -> Result<(Self, Vec<[usize; 3]>)> {
        let n = shapes.len();
        let mut branches = Vec::with_capacity(n);
        let mut bb = b.pp("branches");
        for (i, &s) in shapes.iter().enumerate() {
            let mut branch = bb.pp(i);
            let mut blks = Vec::with_capacity(blocks);
            let mut cur = s;
            for k in 0..blocks {
                let (blk, s2) = BasicBlock::new(&mut branch.pp(k), cur, s[0], 1, INIT, BN_TORCH)?;
                cur = s2;
                blks.push(blk);
            }
            branches.push(blks);
        }
        let mut fuse = Vec::with_capacity(n);
        let mut fb = b.pp("fuse_layers");
        for i in 0..n {
            let mut target = fb.pp(i);
            let mut row = Vec::with_capacity(n);
            for j in 0..n {
                let mut f_b = target.pp(j);
                let f = if j == i {
                    Fuse::Identity
                } else if j > i {
                    let (step, s) = ConvBn::sequential(&mut f_b, shapes[j], shapes[i][0], UP)?;
                    let factor = 1 << (j - i);
                    let up = [s[0], s[1] * factor, s[2] * factor];
                    f_b.note("2", "Upsample(nearest)", up);
                    Fuse::Up { step, factor }
                } else {
                    let mut steps = Vec::with_capacity(i - j);
                    let mut cur = shapes[j];
                    for k in 0..i - j {
                        let last = k == i - j - 1;
                        let (c_out, cfg) = if last {
                            (shapes[i][0], DOWN.no_relu())
                        } else {
                            (shapes[j][0], DOWN)
                        };
                        let (step, s) = ConvBn::sequential(&mut f_b.pp(k), cur, c_out, cfg)?;
                        cur = s;
                        steps.push(step);
                    }
                    Fuse::Down(steps)
                };
                row.push(f);
            }
            fuse.push(row);
        }
        Ok((HrModule { branches, fuse }, shapes.to_vec()))
    }

    fn forward_t(&self, xs: &[Tensor], train: bool) -> candle_core::Result<Vec<Tensor>> {
        let mut ys = Vec::with_capacity(xs.len());
        for (x, blocks) in xs.iter().zip(&self.branches) {
            let mut y = x.clone();
            for blk in blocks {
                y = blk.forward_t(&y, train)?;
            }
            ys.push(y);
        }
        let mut out = Vec::with_capacity(ys.len());
        for row in &self.fuse {
            let mut terms = Vec::with_capacity(row.len());
            for (f, y) in row.iter().zip(&ys) {
                terms.push(match f {
                    Fuse::Identity => y.clone(),
                    Fuse::Up { step, factor } => {
                        crate::ops::upsample_nearest(&step.forward_t(y, train)?, *factor)?
                    }
                    Fuse::Down(steps) => chain(steps, y, train)?,
                });
            }
            // The last addition carries the ReLU (one fused pass, one stored tensor).
            let Some((last, rest)) = terms.split_last() else {
                candle_core::bail!("HRNet module without branches");
            };
            out.push(match rest.split_first() {
                None => crate::ops::relu(last)?,
                Some((first, more)) => {
                    let mut sum = first.clone();
                    for t in more {
                        sum = (sum + t)?;
                    }
                    crate::ops::add_relu(&sum, last)?
                }
            });
        }
        Ok(out)
    }

    /// [`Self::forward_t`] in inference, as operations.
    fn describe(&self, d: &mut Describer, xs: &[Value]) -> Result<Vec<Value>> {
        let mut ys = Vec::with_capacity(xs.len());
        for (&x, blocks) in xs.iter().zip(&self.branches) {
            let mut y = x;
            for blk in blocks {
                y = blk.describe(d, y)?;
            }
            ys.push(y);
        }
        let mut out = Vec::with_capacity(ys.len());
        for row in &self.fuse {
            let mut terms = Vec::with_capacity(row.len());
            for (f, &y) in row.iter().zip(&ys) {
                terms.push(match f {
                    Fuse::Identity => y,
                    Fuse::Up { step, factor } => {
                        let t = step.describe(d, y)?;
                        d.upsample_nearest(t, *factor)
                    }
                    Fuse::Down(steps) => describe_chain(steps, d, y)?,
                });
            }
            // Summed in forward_t's order: the first terms, then the last with the ReLU.
            let Some((&last, rest)) = terms.split_last() else {
                return Err(crate::Error::Msg("HRNet module without branches".into()));
            };
            out.push(match rest.split_first() {
                None => d.relu(last),
                Some((&first, more)) => {
                    let mut sum = first;
                    for &t in more {
                        sum = d.add(sum, t, false)?;
                    }
                    d.add(sum, last, true)?
                }
            });
        }
        Ok(out)
    }
}

/// Per new or changed branch: the conv+BN+ReLU steps of a transition (None: passed through).
type Transition = Vec<Option<Vec<ConvBn>>>;

/// Builds a transition in `b`'s scope (`transitionK`): branches whose width changes get one 3x3
/// conv (`i.{0,1}`); each new branch comes from the lowest-resolution previous branch by 3x3/s2
/// steps (`i.j.{0,1}`).
fn transition(
    b: &mut Builder,
    pre: &[[usize; 3]],
    channels: &[usize],
) -> Result<(Transition, Vec<[usize; 3]>)> {
    let mut t = Vec::with_capacity(channels.len());
    let mut shapes = Vec::with_capacity(channels.len());
    for (i, &c) in channels.iter().enumerate() {
        if i < pre.len() {
            if pre[i][0] != c {
                let (step, s) = ConvBn::sequential(&mut b.pp(i), pre[i], c, SAME)?;
                t.push(Some(vec![step]));
                shapes.push(s);
            } else {
                t.push(None);
                shapes.push(pre[i]);
            }
        } else {
            let mut cur = pre[pre.len() - 1];
            let extra = i + 1 - pre.len();
            let mut steps = Vec::with_capacity(extra);
            for j in 0..extra {
                let c_out = if j == i - pre.len() { c } else { cur[0] };
                let (step, s) = ConvBn::sequential(&mut b.pp(i).pp(j), cur, c_out, DOWN)?;
                cur = s;
                steps.push(step);
            }
            t.push(Some(steps));
            shapes.push(cur);
        }
    }
    Ok((t, shapes))
}

/// The HRNet backbone: image `(N, 3, H, W)` to `(N, 15 C, H / 4, W / 4)`.
pub struct HrnetBackbone {
    /// `conv1`/`bn1` and `conv2`/`bn2`: two 3x3/s2 convs with BN and ReLU.
    stem: [ConvBn; 2],
    layer1: Vec<Bottleneck>,
    transitions: Vec<Transition>,
    stages: Vec<Vec<HrModule>>,
    out_channels: usize,
}

/// Modules per stage (stages 2, 3, 4) and BasicBlocks per branch, as in the published configs.
const STAGE_MODULES: [usize; 3] = [1, 4, 3];
const BLOCKS: usize = 4;

impl HrnetBackbone {
    /// Registers the backbone (group: encoder) for `input = [3, H, W]`; returns it and its output
    /// shape.
    pub fn new(
        b: &mut Builder,
        input: [usize; 3],
        widths: HrnetWidths,
    ) -> Result<(Self, [usize; 3])> {
        b.set_group(ParamGroup::Encoder);
        let (stem1, s) = ConvBn::new(b, ["conv1", "bn1"], input, widths.stem, DOWN)?;
        let (stem2, s) = ConvBn::new(b, ["conv2", "bn2"], s, widths.stem, DOWN)?;
        let mut layer1 = Vec::with_capacity(4);
        let mut s = s;
        let mut l1 = b.pp("layer1");
        for k in 0..4 {
            let (blk, s2) = Bottleneck::new(&mut l1.pp(k), s, widths.stem, 1, INIT, BN_TORCH)?;
            s = s2;
            layer1.push(blk);
        }
        let mut shapes = vec![s];
        let mut transitions = Vec::with_capacity(3);
        let mut stages = Vec::with_capacity(3);
        for (k, &modules) in STAGE_MODULES.iter().enumerate() {
            let channels = widths.branches(k + 2);
            let (t, sh) = transition(
                &mut b.pp(format!("transition{}", k + 1)),
                &shapes,
                &channels,
            )?;
            transitions.push(t);
            shapes = sh;
            let mut mods = Vec::with_capacity(modules);
            let mut stage = b.pp(format!("stage{}", k + 2));
            for m in 0..modules {
                let (module, sh) = HrModule::new(&mut stage.pp(m), &shapes, BLOCKS)?;
                shapes = sh;
                mods.push(module);
            }
            stages.push(mods);
        }
        let out_channels = shapes.iter().map(|s| s[0]).sum();
        let out = [out_channels, shapes[0][1], shapes[0][2]];
        b.note("upsample+cat", "Concat(bilinear)", out);
        Ok((
            HrnetBackbone {
                stem: [stem1, stem2],
                layer1,
                transitions,
                stages,
                out_channels,
            },
            out,
        ))
    }

    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    /// The four branch outputs (resolutions 1/4, 1/8, 1/16, 1/32).
    pub fn branches_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Vec<Tensor>> {
        let y = self.stem[0].forward_t(x, train)?;
        let mut y = self.stem[1].forward_t(&y, train)?;
        for blk in &self.layer1 {
            y = blk.forward_t(&y, train)?;
        }
        let mut xs = vec![y];
        for (t, mods) in self.transitions.iter().zip(&self.stages) {
            let mut next = Vec::with_capacity(t.len());
            for (i, step) in t.iter().enumerate() {
                next.push(match step {
                    // New branches start from the lowest-resolution branch.
                    Some(steps) => chain(steps, &xs[i.min(xs.len() - 1)], train)?,
                    None => xs[i].clone(),
                });
            }
            xs = next;
            for m in mods {
                xs = m.forward_t(&xs, train)?;
            }
        }
        Ok(xs)
    }

    /// [`ModuleT::forward_t`] in inference, as operations.
    pub fn describe(&self, d: &mut Describer, x: Value) -> Result<Value> {
        let y = self.stem[0].describe(d, x)?;
        let mut y = self.stem[1].describe(d, y)?;
        for blk in &self.layer1 {
            y = blk.describe(d, y)?;
        }
        let mut xs = vec![y];
        for (t, mods) in self.transitions.iter().zip(&self.stages) {
            let mut next = Vec::with_capacity(t.len());
            for (i, step) in t.iter().enumerate() {
                next.push(match step {
                    Some(steps) => describe_chain(steps, d, xs[i.min(xs.len() - 1)])?,
                    None => xs[i],
                });
            }
            xs = next;
            for m in mods {
                xs = m.describe(d, &xs)?;
            }
        }
        let [_, h, w] = d.shape(xs[0]);
        let mut parts = Vec::with_capacity(xs.len());
        for &t in &xs {
            parts.push(d.resize_bilinear(t, h, w)?);
        }
        d.concat(parts)
    }
}

/// All branches resized to the highest resolution and concatenated along channels.
impl ModuleT for HrnetBackbone {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let xs = self.branches_t(x, train)?;
        let (_, _, h, w) = xs[0].dims4()?;
        let mut parts = Vec::with_capacity(xs.len());
        for t in &xs {
            parts.push(crate::ops::resize_bilinear(t, h, w)?);
        }
        Tensor::cat(&parts, 1)
    }
}

/// Input pixels per pixel of the backbone's output features.
const NATIVE_STRIDE: usize = 4;

/// HRNet backbone + the binary head: 1x1 conv (no bias), BN, ReLU, 1x1 conv to L maps (no bias).
pub struct HrnetKeypointNet {
    backbone: HrnetBackbone,
    /// `head.0`, `head.1` (and the ReLU `head.2`).
    head_bn: ConvBn,
    /// `head.3`.
    head_out: Conv2d,
    rows: Vec<LayerInfo>,
    /// Input pixels per output pixel (4, or coarser through [`Self::with_heatmap_stride`]).
    stride: usize,
    head: HeadKind,
}

impl HrnetKeypointNet {
    /// `base` is the published width (18 or 32), `width` a multiplier (1.0 = published).
    pub fn new(
        store: &mut ParamStore,
        base: usize,
        width: f32,
        points: usize,
        input_size: usize,
        head: HeadKind,
    ) -> Result<Self> {
        let mut rows = Vec::new();
        let mut b = Builder::new(store, &mut rows);
        let (backbone, s) = HrnetBackbone::new(
            &mut b,
            [3, input_size, input_size],
            HrnetWidths::scaled(base, width),
        )?;
        b.set_group(ParamGroup::Head);
        let mut hb = b.pp("head");
        let head_cfg = ConvBnConfig::new(1, INIT);
        let (head_bn, s) = ConvBn::sequential(&mut hb, s, s[0], head_cfg)?;
        let maps = points * head.channels_per_point();
        let (head_out, _) = hb.conv("3", s, maps, 1, CONV)?;
        Ok(HrnetKeypointNet {
            backbone,
            head_bn,
            head_out,
            rows,
            stride: NATIVE_STRIDE,
            head,
        })
    }

    /// Maps at `stride` input pixels per map pixel (a power of two, at least 4). The 270-channel
    /// 1/4-resolution features are average-pooled to that grid before the head: the head and
    /// every parameter stay as published, each coarse map pixel sees the mean of the fine
    /// features it covers (no aliasing, unlike subsampling or a strided head), and a grid of any
    /// stride costs one cheap op.
    pub fn with_heatmap_stride(mut self, stride: usize) -> Self {
        self.stride = stride.max(NATIVE_STRIDE);
        let f = self.stride / NATIVE_STRIDE;
        for row in &mut self.rows {
            if row.name.starts_with("head.") {
                row.output = [row.output[0], row.output[1] / f, row.output[2] / f];
            }
        }
        self
    }

    pub fn backbone(&self) -> &HrnetBackbone {
        &self.backbone
    }
}

impl KeypointNet for HrnetKeypointNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        super::check_input(x)?;
        let mut f = self.backbone.forward_t(x, train)?;
        let pool = self.stride / NATIVE_STRIDE;
        if pool > 1 {
            f = f.avg_pool2d(pool)?;
        }
        let y = self.head_bn.forward_t(&f, train)?;
        self.head.maps(self.head_out.forward(&y)?)
    }

    fn stride(&self) -> usize {
        self.stride
    }

    fn layers(&self) -> Vec<LayerInfo> {
        self.rows.clone()
    }

    fn describe(&self, input_size: usize) -> Result<NetDescription> {
        let mut d = Describer::new(input_size);
        let mut f = self.backbone.describe(&mut d, INPUT)?;
        let pool = self.stride / NATIVE_STRIDE;
        if pool > 1 {
            f = d.avg_pool(f, pool)?;
        }
        let y = self.head_bn.describe(&mut d, f)?;
        let y = d.head(y, &self.head_out, self.head)?;
        Ok(d.finish(y))
    }
}
