//! Tensor operations the models use. Every model calls convolution and batch norm through here,
//! so that faster CPU kernels can replace Candle's without touching the models.

pub mod batchnorm;
pub mod conv;
pub mod conv_cpu;
pub mod cpu_data;

pub use batchnorm::batch_norm;
pub use conv::conv2d;
