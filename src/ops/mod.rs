//! Tensor operations the models use. Every model calls convolution and batch norm through here,
//! so that faster CPU kernels can replace Candle's without touching the models.

pub mod alloc;
pub mod batchnorm;
pub mod batchnorm_cpu;
pub mod buffer;
pub mod conv;
pub mod conv_algo;
pub mod conv_cpu;
pub mod conv_direct;
pub mod conv_geom;
pub mod conv_winograd;
pub mod cpu_data;
pub mod eltwise;
pub mod lane_sums;
pub mod maxpool;
pub mod pixel_shuffle;
pub mod portable;
pub mod resize;
pub mod simd;
pub mod sync_stats;
pub mod threads;
pub mod upsample;

pub use batchnorm::{
    batch_norm, batch_norm_relu, batch_norm_sync, inference_scale_shift, BatchNormConfig,
    BatchNormParams,
};
pub use conv::{conv2d, conv2d_affine, conv2d_relu};
pub use conv_algo::{with_conv_algo, ConvAlgo};
pub use eltwise::{add_relu, relu};
pub use maxpool::max_pool2d;
pub use pixel_shuffle::{pixel_shuffle, shuffle_cat};
pub use portable::with_portable_ops;
pub use resize::resize_bilinear;
pub use simd::{with_vector_width, VectorWidth};
pub use upsample::upsample_nearest;
