//! Access to the f32 data of CPU tensors and storages, for the custom CPU kernels.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Layout, Result, Storage, Tensor};

/// The contiguous f32 slice a custom op receives, or an error naming the op.
pub fn storage_f32<'a>(op: &str, s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v.as_slice(),
        other => candle_core::bail!("{op}: expected f32, got {:?}", other.dtype()),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{op}: expected a contiguous input"),
    }
}

/// The contiguous f32 slice an in-place op updates, or an error naming the op.
pub fn storage_f32_mut<'a>(op: &str, s: &'a mut CpuStorage, l: &Layout) -> Result<&'a mut [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v.as_mut_slice(),
        other => candle_core::bail!("{op}: expected f32, got {:?}", other.dtype()),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&mut data[a..b]),
        None => candle_core::bail!("{op}: expected a contiguous tensor"),
    }
}

/// Runs `f` on the contiguous f32 data of a CPU tensor (made contiguous first if needed).
pub fn with_f32<R>(op: &str, t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (s, l) = t.storage_and_layout();
    match &*s {
        Storage::Cpu(cpu) => f(storage_f32(op, cpu, l)?),
        _ => candle_core::bail!("{op}: expected a CPU tensor"),
    }
}
