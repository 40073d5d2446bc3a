//! A network's inference-mode forward pass as a flat list of operations, for writers of other
//! formats (the ONNX exporter): every network describes itself next to its own `forward_t`, so
//! no exporter repeats the architectures.
//!
//! The description is what eval mode computes, rewritten where that is exact in arithmetic:
//! each BatchNorm after a convolution is folded into the convolution's weights and bias
//! (`w' = w · scale`, `b' = b · scale + shift`, with [`crate::ops::inference_scale_shift`]'s
//! scale and shift, the same the CPU kernels fuse), a BatchNorm on its own becomes a per-channel
//! affine map, and the two-channel head's `fg - bg` becomes one convolution whose weights are the
//! differences (the head is linear, so the difference of two convolutions is a convolution).
//!
//! Values are numbered: 0 is the input image, operation `i` produces value `i + 1`. Every value
//! carries its shape `[C, H, W]` for one image, so the writer needs no shape inference.

use candle_core::{DType, Tensor};

use super::layers::{BatchNorm2d, Conv2d, BN_EPS};
use super::HeadKind;
use crate::{Error, Result};

/// A value of the description: 0 is the input, `i + 1` the output of operation `i`.
pub type Value = usize;

/// The input image.
pub const INPUT: Value = 0;

/// One inference-mode operation on `(N, C, H, W)` tensors.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Square-kernel convolution with symmetric zero padding and a bias (a folded BatchNorm's,
    /// or zeros), optionally followed by a ReLU.
    Conv {
        input: Value,
        /// `[C_out, C_in, k, k]`, row-major.
        weight: Vec<f32>,
        shape: [usize; 4],
        bias: Vec<f32>,
        stride: usize,
        padding: usize,
        relu: bool,
    },
    /// `x · scale[c] + shift[c]` (a BatchNorm that follows no convolution), optionally then ReLU.
    Affine {
        input: Value,
        scale: Vec<f32>,
        shift: Vec<f32>,
        relu: bool,
    },
    Relu(Value),
    /// `a + b`, optionally then ReLU.
    Add {
        a: Value,
        b: Value,
        relu: bool,
    },
    /// Max pooling with padding that never wins (PyTorch's `-inf` padding).
    MaxPool {
        input: Value,
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    /// Average over non-overlapping `size x size` windows (kernel = stride, no padding).
    AvgPool {
        input: Value,
        size: usize,
    },
    /// Nearest upsampling by an integer factor: output pixel `o` reads input `floor(o / f)`.
    UpsampleNearest {
        input: Value,
        factor: usize,
    },
    /// Bilinear upsampling by an integer factor with PyTorch's `align_corners=False`
    /// (half-pixel centres, source clamped at the border).
    UpsampleBilinear {
        input: Value,
        factor: usize,
    },
    /// Concatenation along channels.
    Concat(Vec<Value>),
    /// PyTorch's `PixelShuffle(r)` (ONNX's DepthToSpace in CRD order).
    PixelShuffle {
        input: Value,
        factor: usize,
    },
}

/// A network's forward pass: the operations, the shape of every value, and which is the output.
#[derive(Clone, Debug, PartialEq)]
pub struct NetDescription {
    pub ops: Vec<Op>,
    /// `shapes[v]`: `[C, H, W]` of value `v` for one image.
    pub shapes: Vec<[usize; 3]>,
    pub output: Value,
}

impl NetDescription {
    pub fn input_shape(&self) -> [usize; 3] {
        self.shapes[INPUT]
    }

    pub fn output_shape(&self) -> [usize; 3] {
        self.shapes[self.output]
    }
}

/// Records operations while a network walks its layers.
pub struct Describer {
    ops: Vec<Op>,
    shapes: Vec<[usize; 3]>,
}

fn values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
}

impl Describer {
    /// Starts a description for square RGB inputs of `input_size` pixels.
    pub fn new(input_size: usize) -> Self {
        Describer {
            ops: Vec::new(),
            shapes: vec![[3, input_size, input_size]],
        }
    }

    pub fn shape(&self, v: Value) -> [usize; 3] {
        self.shapes[v]
    }

    fn push(&mut self, op: Op, shape: [usize; 3]) -> Value {
        self.ops.push(op);
        self.shapes.push(shape);
        self.shapes.len() - 1
    }

    /// Ends the description with `output` as the network's output.
    pub fn finish(self, output: Value) -> NetDescription {
        NetDescription {
            ops: self.ops,
            shapes: self.shapes,
            output,
        }
    }

    fn conv_from(
        &mut self,
        input: Value,
        conv: &Conv2d,
        weight: Vec<f32>,
        bias: Vec<f32>,
        relu: bool,
    ) -> Result<Value> {
        let dims = conv.weight.dims();
        let [c_out, c_in, kh, kw] = <[usize; 4]>::try_from(dims)
            .map_err(|_| Error::Msg(format!("describe: conv weight of shape {dims:?}")))?;
        let [c, h, w] = self.shape(input);
        if kh != kw || c_in != c {
            return Err(Error::Msg(format!(
                "describe: a {kh}x{kw} conv of {c_in} input channels on {c} channels"
            )));
        }
        let out = |n: usize| (n + 2 * conv.padding - kh) / conv.stride + 1;
        let shape = [c_out, out(h), out(w)];
        let weight_len = weight.len();
        if weight_len != c_out * c_in * kh * kw || bias.len() != c_out {
            return Err(Error::Msg(
                "describe: conv weight or bias of the wrong size".into(),
            ));
        }
        Ok(self.push(
            Op::Conv {
                input,
                weight,
                shape: [c_out, c_in, kh, kw],
                bias,
                stride: conv.stride,
                padding: conv.padding,
                relu,
            },
            shape,
        ))
    }

    /// A convolution (its own bias or none), then ReLU when `relu`.
    pub fn conv(&mut self, input: Value, conv: &Conv2d, relu: bool) -> Result<Value> {
        let c_out = conv.weight.dim(0)?;
        let bias = match &conv.bias {
            Some(b) => values(b)?,
            None => vec![0.0; c_out],
        };
        self.conv_from(input, conv, values(&conv.weight)?, bias, relu)
    }

    /// `bn(conv(x))` (then ReLU) as one convolution with the BatchNorm folded in, as
    /// [`super::layers::conv_bn`] computes it in inference.
    pub fn conv_bn(
        &mut self,
        input: Value,
        conv: &Conv2d,
        bn: &BatchNorm2d,
        relu: bool,
    ) -> Result<Value> {
        let (scale, mut shift) = crate::ops::inference_scale_shift(bn.params(), BN_EPS)?;
        let mut weight = values(&conv.weight)?;
        let per_out = weight.len() / scale.len().max(1);
        for (row, &s) in weight.chunks_exact_mut(per_out).zip(&scale) {
            row.iter_mut().for_each(|v| *v *= s);
        }
        if let Some(b) = &conv.bias {
            for ((sh, &s), &bc) in shift.iter_mut().zip(&scale).zip(&values(b)?) {
                *sh += bc * s;
            }
        }
        self.conv_from(input, conv, weight, shift, relu)
    }

    /// A BatchNorm on its own (inference mode), then ReLU when `relu`.
    pub fn bn(&mut self, input: Value, bn: &BatchNorm2d, relu: bool) -> Result<Value> {
        let (scale, shift) = crate::ops::inference_scale_shift(bn.params(), BN_EPS)?;
        if scale.len() != self.shape(input)[0] {
            return Err(Error::Msg("describe: BatchNorm of the wrong width".into()));
        }
        let shape = self.shape(input);
        Ok(self.push(
            Op::Affine {
                input,
                scale,
                shift,
                relu,
            },
            shape,
        ))
    }

    /// The last convolution and what the head makes of it ([`HeadKind::maps`]): the convolution
    /// itself, or for a two-channel head the foreground minus the background maps as one
    /// convolution of weight and bias differences.
    pub fn head(&mut self, input: Value, conv: &Conv2d, head: HeadKind) -> Result<Value> {
        match head {
            HeadKind::Binary => self.conv(input, conv, false),
            HeadKind::TwoChannel => {
                let c_out = conv.weight.dim(0)?;
                if c_out % 2 != 0 {
                    return Err(Error::Msg(format!(
                        "describe: a two-channel head with {c_out} output channels"
                    )));
                }
                let points = c_out / 2;
                let w = values(&conv.weight)?;
                let per_out = w.len() / c_out;
                let (bg, fg) = w.split_at(points * per_out);
                let weight = fg.iter().zip(bg).map(|(f, b)| f - b).collect();
                let bias = match &conv.bias {
                    Some(b) => {
                        let b = values(b)?;
                        (0..points).map(|p| b[points + p] - b[p]).collect()
                    }
                    None => vec![0.0; points],
                };
                let half = Conv2d {
                    weight: conv.weight.narrow(0, 0, points)?,
                    bias: None,
                    stride: conv.stride,
                    padding: conv.padding,
                };
                self.conv_from(input, &half, weight, bias, false)
            }
        }
    }

    pub fn relu(&mut self, input: Value) -> Value {
        let shape = self.shape(input);
        self.push(Op::Relu(input), shape)
    }

    pub fn add(&mut self, a: Value, b: Value, relu: bool) -> Result<Value> {
        let shape = self.shape(a);
        if shape != self.shape(b) {
            return Err(Error::Msg(format!(
                "describe: adding shapes {shape:?} and {:?}",
                self.shape(b)
            )));
        }
        Ok(self.push(Op::Add { a, b, relu }, shape))
    }

    pub fn max_pool(
        &mut self,
        input: Value,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Value {
        let [c, h, w] = self.shape(input);
        let out = |n: usize| (n + 2 * padding - kernel) / stride + 1;
        self.push(
            Op::MaxPool {
                input,
                kernel,
                stride,
                padding,
            },
            [c, out(h), out(w)],
        )
    }

    /// Candle's `avg_pool2d(size)`; sizes that do not divide the map are refused (Candle drops
    /// the remainder, a choice an exported graph should not inherit silently).
    pub fn avg_pool(&mut self, input: Value, size: usize) -> Result<Value> {
        let [c, h, w] = self.shape(input);
        if size == 0 || h % size != 0 || w % size != 0 {
            return Err(Error::config(format!(
                "average pooling of a {h}x{w} map by {size} does not tile it"
            )));
        }
        Ok(self.push(Op::AvgPool { input, size }, [c, h / size, w / size]))
    }

    pub fn upsample_nearest(&mut self, input: Value, factor: usize) -> Value {
        let [c, h, w] = self.shape(input);
        self.push(
            Op::UpsampleNearest { input, factor },
            [c, h * factor, w * factor],
        )
    }

    /// Bilinear resize of `input` to `h x w`: an identity for the same size, an integer
    /// upsampling otherwise; other ratios are refused.
    pub fn resize_bilinear(&mut self, input: Value, h: usize, w: usize) -> Result<Value> {
        let [c, ih, iw] = self.shape(input);
        if (ih, iw) == (h, w) {
            return Ok(input);
        }
        let factor = h / ih.max(1);
        if factor < 2 || ih * factor != h || iw * factor != w {
            return Err(Error::config(format!(
                "a bilinear resize from {ih}x{iw} to {h}x{w} is not an integer upsampling"
            )));
        }
        Ok(self.push(Op::UpsampleBilinear { input, factor }, [c, h, w]))
    }

    pub fn concat(&mut self, inputs: Vec<Value>) -> Result<Value> {
        let [_, h, w] = self.shape(inputs[0]);
        if inputs.iter().any(|&v| self.shape(v)[1..] != [h, w]) {
            return Err(Error::Msg(
                "describe: concatenating maps of different sizes".into(),
            ));
        }
        let c = inputs.iter().map(|&v| self.shape(v)[0]).sum();
        Ok(self.push(Op::Concat(inputs), [c, h, w]))
    }

    pub fn pixel_shuffle(&mut self, input: Value, factor: usize) -> Result<Value> {
        let [c, h, w] = self.shape(input);
        if factor == 0 || c % (factor * factor) != 0 {
            return Err(Error::Msg(format!(
                "describe: pixel shuffle by {factor} of {c} channels"
            )));
        }
        Ok(self.push(
            Op::PixelShuffle { input, factor },
            [c / (factor * factor), h * factor, w * factor],
        ))
    }
}
