//! The shapes of a 2-D convolution and what its forward pass applies to each output channel,
//! shared by the CPU algorithms ([`super::conv_cpu`], [`super::conv_direct`],
//! [`super::conv_winograd`]) and the choice between them ([`super::conv_algo`]).

/// Upper bound on the floats of one im2col tile (per thread): 16 MiB.
const TILE_FLOATS: usize = 4 << 20;

/// Shapes of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub n: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub padding: usize,
}

impl ConvGeom {
    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.padding - self.kh) / self.stride + 1
    }
    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.padding - self.kw) / self.stride + 1
    }
    /// Rows of the column matrix: `C_in · KH · KW`.
    pub fn k(&self) -> usize {
        self.c_in * self.kh * self.kw
    }
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.padding == 0
    }
    /// Output rows per im2col tile.
    pub fn tile_rows(&self) -> usize {
        let per_row = self.k() * self.out_w();
        (TILE_FLOATS / per_row.max(1)).clamp(1, self.out_h())
    }
    pub fn in_len(&self) -> usize {
        self.c_in * self.h * self.w
    }
    pub fn out_len(&self) -> usize {
        self.c_out * self.out_h() * self.out_w()
    }
    /// Multiply-adds of the forward pass (the backward passes cost the same each).
    pub fn macs(&self) -> usize {
        self.n * self.out_len() * self.k()
    }
}

/// What the forward pass applies to the convolution's output, per output channel:
/// `max?(0, y · scale[c] + bias[c])`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// Multiplies each output channel (`C_out` values): a BatchNorm folded in for inference.
    pub scale: Option<&'a [f32]>,
    /// Added to each output channel (`C_out` values).
    pub bias: Option<&'a [f32]>,
    /// `max(0, ·)` last.
    pub relu: bool,
}

impl Epilogue<'_> {
    /// Channel `c`'s multiplier and offset (1 and 0 where absent).
    pub fn channel(&self, c: usize) -> (f32, f32) {
        (
            self.scale.map_or(1.0, |s| s[c]),
            self.bias.map_or(0.0, |b| b[c]),
        )
    }

    /// One output of a channel whose [`Self::channel`] is `(a, b)`: `max?(0, v · a + b)`.
    pub fn map(&self, v: f32, (a, b): (f32, f32)) -> f32 {
        let v = v * a + b;
        if self.relu {
            v.max(0.0)
        } else {
            v
        }
    }

    fn is_identity(&self) -> bool {
        self.scale.is_none() && self.bias.is_none() && !self.relu
    }

    /// Applies the epilogue to `rows` output channels of `len` values each, `stride` apart,
    /// while the tile the gemm just wrote is still in cache.
    ///
    /// # Safety
    /// `dst` must point to `rows` runs of `len` initialised floats `stride` apart, which no
    /// other thread accesses during the call.
    pub unsafe fn apply(&self, dst: *mut f32, rows: usize, stride: usize, len: usize) {
        if self.is_identity() {
            return;
        }
        for r in 0..rows {
            // SAFETY: the caller guarantees that row `r` (`len` floats at `dst + r·stride`) is
            // initialised and ours alone for the duration of this call.
            let row = unsafe { std::slice::from_raw_parts_mut(dst.add(r * stride), len) };
            let (a, b) = self.channel(r);
            match (self.scale.is_some(), self.relu) {
                (true, true) => row.iter_mut().for_each(|v| *v = (*v * a + b).max(0.0)),
                (true, false) => row.iter_mut().for_each(|v| *v = *v * a + b),
                (false, true) => row.iter_mut().for_each(|v| *v = (*v + b).max(0.0)),
                (false, false) => row.iter_mut().for_each(|v| *v += b),
            }
        }
    }
}
