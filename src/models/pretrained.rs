//! Loading pretrained weights by name: torchvision `.pth` files (PyTorch zip pickles), timm /
//! our own `.safetensors`, fastai DynamicUnet state dicts and reference HRNet checkpoints.
//!
//! File names are mapped to model names by stripping wrapper prefixes (`module.` from
//! DataParallel, `model.` from timm/Lightning wrappers, `backbone.`) and by translating fastai's
//! `layers.0.<i>.` (the encoder as an `nn.Sequential` of ResNet children) to torchvision names.
//! Shapes are checked for every shared name before anything is set (see
//! [`ParamStore::load_tensors`]); the report lists what was loaded, which model tensors kept their
//! initial values, and which file tensors were not used (e.g. torchvision's `fc.*`, timm HRNet's
//! classification parts `incre_modules`, `downsamp_modules`, `final_layer` and `classifier`).
//! BatchNorm's `num_batches_tracked` counters, which no model here keeps, are listed apart as
//! ignored.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use super::params::{LoadReport, ParamGroup, ParamStore};
use crate::{Error, Result};

/// Prefixes that wrap a model's own names in common checkpoints.
const WRAPPERS: [&str; 4] = ["module.", "model.", "backbone.", "encoder."];

/// Keys under which training scripts commonly nest the state dict inside a `.pth` file.
const NESTED_KEYS: [&str; 4] = ["state_dict", "model", "model_state_dict", "net"];

/// fastai's `create_body(resnet18)`: `nn.Sequential(conv1, bn1, relu, maxpool, layer1..layer4)`.
const FASTAI_BODY: [(&str, &str); 6] = [
    ("0", "conv1"),
    ("1", "bn1"),
    ("4", "layer1"),
    ("5", "layer2"),
    ("6", "layer3"),
    ("7", "layer4"),
];

/// Which parameters a load may set.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Only set parameters of these groups (e.g. only the encoder from a checkpoint whose head has
    /// another shape). `None`: all.
    pub groups: Option<Vec<ParamGroup>>,
}

/// Reads every tensor of a `.safetensors` or PyTorch `.pth`/`.pt`/`.bin` file (by content: PyTorch
/// files are zip archives).
pub fn read_weights(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let mut magic = [0u8; 4];
    {
        use std::io::Read;
        let mut f = std::fs::File::open(path)
            .map_err(|e| Error::file(path, format!("cannot open weights: {e}")))?;
        f.read_exact(&mut magic)
            .map_err(|e| Error::file(path, format!("not a weights file (too short): {e}")))?;
    }
    if &magic == b"PK\x03\x04" {
        let mut v = super::pth::read_pth(path, &NESTED_KEYS)?;
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(v)
    } else {
        let map = candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| {
            Error::file(
                path,
                format!("neither a PyTorch zip checkpoint nor readable safetensors: {e}"),
            )
        })?;
        let mut v: Vec<(String, Tensor)> = map.into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(v)
    }
}

/// File tensors that no model here keeps: PyTorch BatchNorm's step counter (only its momentum-free
/// mode reads it).
fn is_ignored(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
}

/// The model name a checkpoint name stands for, if any.
fn map_name(name: &str, known: &dyn Fn(&str) -> bool) -> Option<String> {
    let mut cur = name;
    loop {
        if known(cur) {
            return Some(cur.to_string());
        }
        if let Some(rest) = cur.strip_prefix("layers.0.") {
            for (idx, tv) in FASTAI_BODY {
                if let Some(tail) = rest.strip_prefix(idx).and_then(|t| t.strip_prefix('.')) {
                    let cand = format!("{tv}.{tail}");
                    if known(&cand) {
                        return Some(cand);
                    }
                }
            }
        }
        match WRAPPERS.iter().find_map(|p| cur.strip_prefix(p)) {
            Some(rest) => cur = rest,
            None => return None,
        }
    }
}

/// Loads the tensors of `path` whose (mapped) names the model has; see the module docs.
pub fn load_pretrained(store: &ParamStore, path: &Path) -> Result<LoadReport> {
    load_pretrained_with(store, path, &LoadOptions::default())
}

/// [`load_pretrained`] restricted by `opts`.
pub fn load_pretrained_with(
    store: &ParamStore,
    path: &Path,
    opts: &LoadOptions,
) -> Result<LoadReport> {
    let tensors = read_weights(path)?;
    let allowed = |name: &str| -> bool {
        match store.get(name) {
            Some(p) => opts.groups.as_ref().is_none_or(|g| g.contains(&p.group)),
            None => false,
        }
    };
    let mut mapped: HashMap<String, Tensor> = HashMap::new();
    let mut source: HashMap<String, String> = HashMap::new();
    let mut unused = Vec::new();
    let mut ignored = Vec::new();
    for (name, t) in tensors {
        if is_ignored(&name) {
            ignored.push(name);
            continue;
        }
        match map_name(&name, &allowed) {
            Some(m) => {
                if let Some(prev) = source.get(&m) {
                    return Err(Error::file(
                        path,
                        format!("tensors `{prev}` and `{name}` both map to model parameter `{m}`"),
                    ));
                }
                source.insert(m.clone(), name);
                mapped.insert(m, t);
            }
            None => unused.push(name),
        }
    }
    let mut report = store.load_tensors(&mapped, path).map_err(|e| match e {
        // Name the file's own tensor name when a mapped name had the wrong shape.
        Error::File { path, msg } => Error::File {
            path,
            msg: format!("{msg} (refusing to load anything)"),
        },
        other => other,
    })?;
    unused.sort();
    ignored.sort();
    report.unused = unused;
    report.ignored = ignored;
    Ok(report)
}
