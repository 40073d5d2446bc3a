//! Named parameters and buffers of a model, created from our own seeded generator (Candle's CPU
//! generator cannot be seeded), saved to and loaded from safetensors by name.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

use super::BatchNormMode;
use crate::{Error, Result};

/// Which part of the network a parameter belongs to: drives freezing and discriminative rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParamGroup {
    /// The (possibly pretrained) backbone that `fine_tune` freezes first.
    Encoder,
    /// Everything between the encoder and the head.
    Decoder,
    /// The final layers that emit heatmaps.
    Head,
}

/// What a tensor is: drives weight decay (none on norms and biases) and whether it is trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParamKind {
    Weight,
    Bias,
    /// BatchNorm scale and shift: trainable even in a frozen encoder (fastai's rule).
    Norm,
    /// Running statistics and counters: saved, never trained.
    Buffer,
}

#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub var: Var,
    pub group: ParamGroup,
    pub kind: ParamKind,
}

impl Param {
    pub fn is_trainable(&self) -> bool {
        self.kind != ParamKind::Buffer
    }

    /// Trainable while the encoder is frozen? (encoder weights/biases are not, its norms are).
    pub fn is_trainable_when_frozen(&self) -> bool {
        match self.kind {
            ParamKind::Buffer => false,
            ParamKind::Norm => true,
            _ => self.group != ParamGroup::Encoder,
        }
    }
}

/// Summary of loading a weights file into a store.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct LoadReport {
    /// Names present in both, now set from the file.
    pub loaded: Vec<String>,
    /// Model parameters that the file did not provide: they keep their initial values.
    pub missing: Vec<String>,
    /// Names in the file that the model does not have.
    pub unused: Vec<String>,
    /// Names in the file that no model keeps (BatchNorm's `num_batches_tracked`): skipped
    /// silently.
    pub ignored: Vec<String>,
}

/// All tensors of a model, in creation order. Names follow torchvision/timm where a reference exists.
pub struct ParamStore {
    device: Device,
    /// How the BatchNorm layers built from here normalise in training.
    batch_norm: BatchNormMode,
    rng: ChaCha8Rng,
    params: Vec<Param>,
    index: HashMap<String, usize>,
}

impl ParamStore {
    pub fn new(device: &Device, seed: u64) -> Self {
        use rand::SeedableRng;
        ParamStore {
            device: device.clone(),
            batch_norm: BatchNormMode::Batch,
            rng: ChaCha8Rng::seed_from_u64(seed),
            params: Vec::new(),
            index: HashMap::new(),
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// How the BatchNorm layers built from now on normalise in training.
    pub fn set_batch_norm_mode(&mut self, mode: BatchNormMode) {
        self.batch_norm = mode;
    }

    pub fn batch_norm_mode(&self) -> BatchNormMode {
        self.batch_norm
    }

    pub fn params(&self) -> &[Param] {
        &self.params
    }

    pub fn get(&self, name: &str) -> Option<&Param> {
        self.index.get(name).map(|&i| &self.params[i])
    }

    /// Number of scalar values in trainable tensors (buffers excluded), as fastai/PyTorch count them.
    pub fn num_trainable_values(&self, frozen_encoder: bool) -> usize {
        self.params
            .iter()
            .filter(|p| {
                if frozen_encoder {
                    p.is_trainable_when_frozen()
                } else {
                    p.is_trainable()
                }
            })
            .map(|p| p.var.elem_count())
            .sum()
    }

    /// Number of scalar values in all parameters (buffers excluded).
    pub fn num_parameters(&self) -> usize {
        self.num_trainable_values(false)
    }

    /// Registers a tensor under a unique name.
    pub fn add(
        &mut self,
        name: &str,
        value: Tensor,
        group: ParamGroup,
        kind: ParamKind,
    ) -> Result<Tensor> {
        if self.index.contains_key(name) {
            return Err(Error::Msg(format!("parameter `{name}` defined twice")));
        }
        let var = Var::from_tensor(&value.to_dtype(DType::F32)?.to_device(&self.device)?)?;
        let t = var.as_tensor().clone();
        self.index.insert(name.to_string(), self.params.len());
        self.params.push(Param {
            name: name.to_string(),
            var,
            group,
            kind,
        });
        Ok(t)
    }

    /// Values drawn from `N(0, std^2)` with our seeded generator.
    pub fn normal(&mut self, shape: &[usize], std: f64) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let dist = Normal::new(0.0f64, std)?;
        let v: Vec<f32> = (0..n).map(|_| dist.sample(&mut self.rng) as f32).collect();
        Ok(Tensor::from_vec(v, shape, &self.device)?)
    }

    /// Values drawn from `U(-bound, bound)` with our seeded generator.
    pub fn uniform(&mut self, shape: &[usize], bound: f64) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = if bound > 0.0 {
            let dist = Uniform::new(-bound, bound)?;
            (0..n).map(|_| dist.sample(&mut self.rng) as f32).collect()
        } else {
            vec![0.0; n]
        };
        Ok(Tensor::from_vec(v, shape, &self.device)?)
    }

    pub fn constant(&self, shape: &[usize], value: f32) -> Result<Tensor> {
        Ok(Tensor::full(value, shape, &self.device)?)
    }

    /// The store's generator, for init schemes that need their own draws (ICNR, ...).
    pub fn rng(&mut self) -> &mut impl Rng {
        &mut self.rng
    }

    /// All tensors by name (for checkpoints).
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .map(|p| (p.name.clone(), p.var.as_tensor().clone()))
            .collect()
    }

    /// Writes every tensor to a safetensors file atomically ([`crate::atomic`]).
    pub fn save_safetensors(&self, path: &Path) -> Result<()> {
        let map: HashMap<String, Tensor> = self.named_tensors().into_iter().collect();
        crate::atomic::write_atomic_with(path, |tmp| {
            candle_core::safetensors::save(&map, tmp).map_err(|e| Error::file(tmp, e.to_string()))
        })
    }

    /// Sets every parameter whose name is in `tensors`. Refuses (changing nothing) if any shared
    /// name has a different shape. `source` names the origin in error messages.
    pub fn load_tensors(
        &self,
        tensors: &HashMap<String, Tensor>,
        source: &Path,
    ) -> Result<LoadReport> {
        let mut report = LoadReport::default();
        for p in &self.params {
            if let Some(t) = tensors.get(&p.name) {
                if t.dims() != p.var.dims() {
                    return Err(Error::file(
                        source,
                        format!(
                            "tensor `{}` has shape {:?} but the model expects {:?}",
                            p.name,
                            t.dims(),
                            p.var.dims()
                        ),
                    ));
                }
            }
        }
        // Every tensor is converted before any is set: a file tensor of a dtype that cannot become
        // f32 (safetensors' sub-byte float types, say) refuses the load, naming the file and the
        // tensor, and leaves the model as it was.
        let mut converted = Vec::new();
        for p in &self.params {
            match tensors.get(&p.name) {
                Some(t) => {
                    let t = t
                        .to_dtype(DType::F32)
                        .and_then(|t| t.to_device(&self.device))
                        .map_err(|e| {
                            Error::file(
                                source,
                                format!(
                                    "tensor `{}` ({:?}) cannot be read as f32: {e}",
                                    p.name,
                                    t.dtype()
                                ),
                            )
                        })?;
                    converted.push((p, t));
                }
                None => report.missing.push(p.name.clone()),
            }
        }
        for (p, t) in converted {
            p.var.set(&t)?;
            report.loaded.push(p.name.clone());
        }
        let mut unused: Vec<String> = tensors
            .keys()
            .filter(|k| !self.index.contains_key(*k))
            .cloned()
            .collect();
        unused.sort();
        report.unused = unused;
        Ok(report)
    }

    /// Loads a safetensors file by name (see [`ParamStore::load_tensors`]).
    pub fn load_safetensors(&self, path: &Path) -> Result<LoadReport> {
        let tensors = candle_core::safetensors::load(path, &self.device)
            .map_err(|e| Error::file(path, format!("not a readable safetensors file: {e}")))?;
        self.load_tensors(&tensors, path)
    }
}
