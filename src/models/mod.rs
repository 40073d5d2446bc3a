//! The networks: a ResNet18 encoder with a UNet decoder, HRNet-W18/W32 with the binary head.
//!
//! [`build`] creates a model's parameters in a [`ParamStore`] (groups: encoder = ResNet / HRNet
//! backbone, decoder = UNet decoder, head = the layers emitting the maps) and returns the network;
//! [`load_pretrained`] fills a store from torchvision/timm/fastai/HRNet checkpoints by name;
//! [`describe`] lists a network's inference-mode operations for exporters.

pub mod blocks;
pub mod describe;
pub mod hrnet;
pub mod layers;
pub mod params;
pub mod pretrained;
pub mod pth;
pub mod resnet;
pub mod unet;

pub use layers::LayerInfo;
pub use params::{LoadReport, Param, ParamGroup, ParamKind, ParamStore};
pub use pretrained::{load_pretrained, load_pretrained_with, LoadOptions};

use candle_core::Tensor;

use crate::{Error, Result};

/// A network that maps normalised images `(N, 3, H, W)` to one map per point `(N, L, H / s, W / s)`.
/// The maps are raw outputs: heatmap values for MSE training, logits for BCE training.
pub trait KeypointNet: Send + Sync {
    /// `train` selects batch statistics (and running-stat updates) in BatchNorm.
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor>;
    /// Input pixels per heatmap pixel (the configured [`ModelConfig::heatmap_stride`]).
    fn stride(&self) -> usize;
    /// The layers with output shapes (for one image of the configured size) and parameter counts,
    /// in creation order, for `hmreg summary`.
    fn layers(&self) -> Vec<LayerInfo> {
        Vec::new()
    }
    /// The inference-mode forward pass for square inputs of `input_size` pixels as a list of
    /// operations ([`describe`]), for exporters. A network that cannot describe itself says so.
    fn describe(&self, input_size: usize) -> Result<describe::NetDescription> {
        let _ = input_size;
        Err(Error::config(
            "this network cannot describe its forward pass for export",
        ))
    }
}

/// Every network is also a Candle [`ModuleT`](candle_core::ModuleT), so code written against
/// Candle's traits (a generic `forward_t` caller, a wrapping module) takes `&*net` as it is.
impl candle_core::ModuleT for dyn KeypointNet + '_ {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        KeypointNet::forward_t(self, x, train)
    }
}

/// Spatial sizes the models accept: every model downsamples 5 times.
pub const SIZE_MULTIPLE: usize = 32;

/// Rejects inputs the networks cannot take (wrong rank, 3 channels, sizes not multiples of 32).
pub(crate) fn check_input(x: &Tensor) -> candle_core::Result<()> {
    let (_, c, h, w) = x.dims4()?;
    if c != 3 {
        candle_core::bail!("model input must have 3 channels, got {c}");
    }
    if h == 0 || w == 0 || h % SIZE_MULTIPLE != 0 || w % SIZE_MULTIPLE != 0 {
        candle_core::bail!(
            "model input size {h}x{w} is not a positive multiple of {SIZE_MULTIPLE}"
        );
    }
    Ok(())
}

/// The architectures. Names are read by [`Arch::from_str`](std::str::FromStr), case-insensitive,
/// on the command line and in config files alike; they are written in kebab-case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", try_from = "String")]
pub enum Arch {
    /// fastai DynamicUnet on ResNet18, full-resolution maps (variant 1). The default, as in
    /// the recipe (`TrainConfig::default`): a `[model]` table without `arch` builds this one.
    #[default]
    UnetResnet18,
    /// HRNet-W18 + binary head, 1/4-resolution maps (variant 2).
    Hrnet18,
    /// HRNet-W32 + binary head.
    Hrnet32,
}

impl Arch {
    pub const ALL: [Arch; 3] = [Arch::UnetResnet18, Arch::Hrnet18, Arch::Hrnet32];

    pub fn as_str(&self) -> &'static str {
        match self {
            Arch::UnetResnet18 => "unet-resnet18",
            Arch::Hrnet18 => "hrnet18",
            Arch::Hrnet32 => "hrnet32",
        }
    }

    /// Input pixels per output pixel of the architecture as published (its finest grid).
    pub fn native_stride(&self) -> usize {
        match self {
            Arch::UnetResnet18 => 1,
            Arch::Hrnet18 | Arch::Hrnet32 => 4,
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Arch {
    type Err = Error;

    /// `unet-resnet18`, `hrnet18` or `hrnet32`, in any case (`HRNet18`), surrounding spaces
    /// ignored.
    fn from_str(s: &str) -> Result<Self> {
        Arch::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                Error::config(format!(
                    "unknown architecture `{s}` (expected unet-resnet18, hrnet18 or hrnet32)"
                ))
            })
    }
}

/// Config files go through [`Arch::from_str`] too (`arch = "HRNet18"` is accepted).
impl TryFrom<String> for Arch {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

/// What the last layer emits for each point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeadKind {
    /// One map per point: heatmap values for MSE, logits for BCE (the write-up's head).
    #[default]
    Binary,
    /// The randomized-rounding paper's head: a background and a foreground map per point (2L
    /// channels, the L background maps first, as its `N x 2 x L x H x W` view). The network
    /// returns the foreground log-odds `fg - bg`: a softmax over the pair is the sigmoid of that
    /// difference, so the paper's per-pixel two-class cross-entropy is exactly BCE with logits
    /// (`pos_weight` 1) on the returned maps, and every decoder reads them as foreground scores.
    TwoChannel,
}

impl HeadKind {
    /// Channels of the last layer per point.
    pub fn channels_per_point(&self) -> usize {
        match self {
            HeadKind::Binary => 1,
            HeadKind::TwoChannel => 2,
        }
    }

    /// The maps the network returns from its last layer's output `(N, C * L, H, W)`: the output
    /// itself, or the foreground log-odds of a two-channel head.
    pub fn maps(&self, y: Tensor) -> candle_core::Result<Tensor> {
        match self {
            HeadKind::Binary => Ok(y),
            HeadKind::TwoChannel => {
                let points = y.dim(1)? / 2;
                y.narrow(1, points, points)? - y.narrow(1, 0, points)?
            }
        }
    }
}

/// Which network to build.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    pub arch: Arch,
    /// Number of landmarks L (output maps).
    pub points: usize,
    /// Square input size in pixels (a multiple of 32); shapes in the summary refer to it.
    pub input_size: usize,
    /// Channel multiplier: 1.0 = the published widths; smaller values give thin test models.
    pub width: f32,
    /// Input pixels per heatmap pixel: a power of two from the architecture's own stride (1 for
    /// the UNet, 4 for HRNet) up to 32; 0 means the architecture's own. Coarser grids average-pool
    /// the features the head reads (see [`hrnet`], [`unet`]), so the parameters are the same at
    /// every stride.
    pub heatmap_stride: usize,
    pub head: HeadKind,
    /// What BatchNorm normalises with in training: see [`BatchNormMode`].
    pub batch_norm: BatchNormMode,
}

/// What BatchNorm normalises with in training (`model.batch_norm`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BatchNormMode {
    /// Each worker's batch statistics (PyTorch's default; DDP's, per replica).
    #[default]
    Batch,
    /// The statistics of the whole global batch, over all data-parallel workers (PyTorch's
    /// SyncBatchNorm): training on W workers computes what one worker with the global batch
    /// would, at the price of two small collectives per layer.
    Sync,
    /// The running statistics, in training too (BatchNorm in eval mode, like torchvision's
    /// FrozenBatchNorm2d but with the scale and shift trained): independent of the batch.
    Running,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            arch: Arch::default(),
            points: 5,
            input_size: 256,
            width: 1.0,
            heatmap_stride: 0,
            head: HeadKind::Binary,
            batch_norm: BatchNormMode::Batch,
        }
    }
}

/// The coarsest heatmap grid a model may be asked for (the input is a multiple of 32).
pub const MAX_HEATMAP_STRIDE: usize = 32;

impl ModelConfig {
    /// Input pixels per heatmap pixel: the configured stride, or the architecture's own for 0.
    pub fn stride(&self) -> usize {
        match self.heatmap_stride {
            0 => self.arch.native_stride(),
            s => s,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let (s, native) = (self.stride(), self.arch.native_stride());
        if !s.is_power_of_two() || s < native || s > MAX_HEATMAP_STRIDE {
            return Err(Error::config(format!(
                "model: heatmap_stride {s} must be a power of two from {native} ({} maps) to \
                 {MAX_HEATMAP_STRIDE}",
                self.arch
            )));
        }
        if self.points == 0 {
            return Err(Error::config("model: points must be at least 1"));
        }
        if self.input_size == 0 || !self.input_size.is_multiple_of(SIZE_MULTIPLE) {
            return Err(Error::config(format!(
                "model: input_size {} is not a positive multiple of {SIZE_MULTIPLE}",
                self.input_size
            )));
        }
        if !(self.width.is_finite() && self.width > 0.0 && self.width <= 4.0) {
            return Err(Error::config(format!(
                "model: width {} must be in (0, 4]",
                self.width
            )));
        }
        Ok(())
    }
}

/// Creates the parameters of `cfg`'s network in `store` and returns the network.
pub fn build(cfg: &ModelConfig, store: &mut ParamStore) -> Result<Box<dyn KeypointNet>> {
    cfg.validate()?;
    store.set_batch_norm_mode(cfg.batch_norm);
    Ok(match cfg.arch {
        Arch::UnetResnet18 => Box::new(
            unet::UnetResnet18::new(store, cfg.width, cfg.points, cfg.input_size, cfg.head)?
                .with_heatmap_stride(cfg.stride()),
        ),
        Arch::Hrnet18 | Arch::Hrnet32 => {
            let base = if cfg.arch == Arch::Hrnet18 { 18 } else { 32 };
            Box::new(
                hrnet::HrnetKeypointNet::new(
                    store,
                    base,
                    cfg.width,
                    cfg.points,
                    cfg.input_size,
                    cfg.head,
                )?
                .with_heatmap_stride(cfg.stride()),
            )
        }
    })
}
