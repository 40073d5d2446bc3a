//! Everything a run builds from its config before the first step: the device, the data (the
//! synthetic set generated first where the config asks for it), the model (with pretrained
//! encoder weights if configured) and the two loaders.

use std::path::Path;

use candle_core::Device;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::loading::loader::MixPart;
use crate::data::sources::dataset::{load_split, move_origin, Sample};
use crate::data::{FilePoints, Loader, LoaderMode, LoaderSpec};
use crate::learn::optim::Adam;
use crate::learn::precision::Precision;
use crate::models::{build, KeypointNet, ParamGroup, ParamStore};
use crate::run::{ResolvedRun, TrainConfig};
use crate::{Error, Result};

/// The optimiser `cfg` asks for over `store`'s parameters, with loss scaling when it trains in
/// f16 (the run's own model and every data-parallel replica's).
pub fn optimiser_for(store: &ParamStore, cfg: &TrainConfig) -> Result<Adam> {
    let mut opt = Adam::new(store, &cfg.optim)?;
    if cfg.precision == Precision::F16 {
        opt.enable_loss_scaling();
    }
    Ok(opt)
}

/// Everything built from a config: device, data, model and loaders.
pub struct Setup {
    /// The config and what the run derives from it.
    pub cfg: ResolvedRun,
    pub device: Device,
    pub store: ParamStore,
    pub model: Box<dyn KeypointNet>,
    pub train_samples: Vec<Sample>,
    /// Which points of the landmark files the samples hold.
    pub file_points: FilePoints,
    pub train: Loader,
    pub val: Loader,
}

impl Setup {
    /// Resolves `cfg` (point count from the data, sizes and strides made consistent), loads the
    /// data, builds the model and the loaders. `note` receives one-line messages for the user.
    /// Pretrained weights named by a hub name are fetched without a progress bar (see
    /// [`Setup::with_progress`]).
    pub fn new(cfg: TrainConfig, note: &dyn Fn(&str)) -> Result<Setup> {
        Setup::with_progress(cfg, note, false)
    }

    /// [`Setup::new`], drawing a download bar on stderr when `progress` (and stderr is a terminal)
    /// while hub weights that are not in the cache come in.
    pub fn with_progress(cfg: TrainConfig, note: &dyn Fn(&str), progress: bool) -> Result<Setup> {
        Setup::build(cfg, note, Some(progress))
    }

    /// [`Setup::new`] for a run resumed from its checkpoint: the weights come from there, so the
    /// pretrained ones are not read (resuming needs neither the network for a hub name nor the
    /// file the run started from).
    pub fn for_resume(cfg: TrainConfig, note: &dyn Fn(&str)) -> Result<Setup> {
        Setup::build(cfg, note, None)
    }

    /// `pretrained`: fetch and load the pretrained weights (with a download bar when true), or
    /// leave them (`None`).
    fn build(mut cfg: TrainConfig, note: &dyn Fn(&str), pretrained: Option<bool>) -> Result<Setup> {
        cfg.check()?;
        let device = cfg.device.open()?;
        // A resumed run's weights come from its checkpoint.
        let starting = pretrained.is_some();
        // Before the data: a hub name that cannot be had fails at once.
        let pretrained = match pretrained {
            Some(progress) => crate::hub::resolve(&cfg.init.pretrained, progress, note)?,
            None => None,
        };
        let (train_samples, val_samples, mix) = prepare_data(&cfg)?;
        cfg.absolutize_paths();
        let cfg = cfg.resolve(Some(train_samples[0].points.len()))?;
        let mut store = ParamStore::new(&device, cfg.seed);
        let model = build(&cfg.model, &mut store)?;
        if let Some(path) = &pretrained {
            load_pretrained_encoder(path, &store, note)?;
        }
        if let (Some(path), true) = (&cfg.init.weights, starting) {
            load_whole_network(path, &store, note)?;
        }
        // Flips need the point count of the files to mirror a selection of points.
        let file_points = FilePoints {
            count: train_samples[0].file_points,
            selection: cfg.data.points.clone(),
        };
        let mut train = Loader::new(
            train_samples.clone(),
            &loader_spec(&cfg, LoaderMode::Train, &file_points),
            &device,
        )?;
        if let Some(parts) = mix {
            train = train.with_mix(parts)?;
        }
        let val = Loader::new(
            val_samples,
            &loader_spec(&cfg, LoaderMode::Eval, &file_points),
            &device,
        )?;
        Ok(Setup {
            cfg,
            device,
            store,
            model,
            train_samples,
            file_points,
            train,
            val,
        })
    }

    /// The optimiser for this run's parameters ([`optimiser_for`]).
    pub fn optimiser(&self) -> Result<Adam> {
        optimiser_for(&self.store, &self.cfg)
    }

    /// A loader of other `samples` prepared like the validation data.
    pub fn eval_loader(&self, samples: Vec<Sample>) -> Result<Loader> {
        let spec = loader_spec(&self.cfg, LoaderMode::Eval, &self.file_points);
        Loader::new(samples, &spec, &self.device)
    }
}

fn loader_spec(cfg: &ResolvedRun, mode: LoaderMode, file_points: &FilePoints) -> LoaderSpec {
    LoaderSpec {
        pipeline: cfg.pipeline.clone(),
        target: cfg.target.clone(),
        batch_size: cfg.batch_size,
        mode,
        seed: cfg.seed,
        file_points: Some(file_points.clone()),
    }
}

/// Sets every tensor of the network from `path` (`init.weights`); a file that leaves any of
/// them out, or has tensors the network lacks, is refused: it is another network.
fn load_whole_network(path: &Path, store: &ParamStore, note: &dyn Fn(&str)) -> Result<()> {
    let report = crate::models::load_pretrained(store, path)?;
    if !report.missing.is_empty() || !report.unused.is_empty() {
        let sample = |v: &[String]| v.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
        return Err(Error::file(
            path,
            format!(
                "init.weights must hold exactly this network's tensors: {} of the network's are \
                 missing (e.g. {}), {} of the file's are not the network's (e.g. {})",
                report.missing.len(),
                sample(&report.missing),
                report.unused.len(),
                sample(&report.unused)
            ),
        ));
    }
    note(&format!(
        "init.weights: all {} tensors of the network loaded from {}",
        report.loaded.len(),
        path.display()
    ));
    Ok(())
}

/// Loads the encoder's tensors from `path` and tells what was loaded, which encoder tensors kept
/// their initial values, and which file tensors were not used, counted by their top-level
/// module (timm HRNet's classification parts, torchvision's `fc`).
fn load_pretrained_encoder(path: &Path, store: &ParamStore, note: &dyn Fn(&str)) -> Result<()> {
    let opts = crate::models::LoadOptions {
        groups: Some(vec![ParamGroup::Encoder]),
    };
    let report = crate::models::load_pretrained_with(store, path, &opts)?;
    if report.loaded.is_empty() {
        return Err(Error::file(
            path,
            "no tensor of this file matches the model's encoder",
        ));
    }
    let kept: Vec<&str> = report
        .missing
        .iter()
        .filter(|n| store.get(n).is_some_and(|p| p.group == ParamGroup::Encoder))
        .map(String::as_str)
        .collect();
    let mut msg = format!(
        "pretrained: {} encoder tensors loaded from {}; {} encoder tensors kept their initial \
         values",
        report.loaded.len(),
        path.display(),
        kept.len()
    );
    if !kept.is_empty() {
        msg += &format!(" ({})", by_module(&kept));
    }
    if !report.unused.is_empty() {
        let unused: Vec<&str> = report.unused.iter().map(String::as_str).collect();
        msg += &format!(
            "; {} file tensors not used ({})",
            unused.len(),
            by_module(&unused)
        );
    }
    if !report.ignored.is_empty() {
        msg += &format!("; {} num_batches_tracked ignored", report.ignored.len());
    }
    note(&msg);
    Ok(())
}

/// `names` counted by their first component: `classifier: 2, incre_modules: 104`.
fn by_module(names: &[&str]) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for n in names {
        *counts
            .entry(n.split('.').next().unwrap_or(n))
            .or_insert(0usize) += 1;
    }
    counts
        .iter()
        .map(|(m, c)| format!("{m}: {c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Training samples, validation samples, and the training mix by source (`None` with one source).
pub type PreparedData = (Vec<Sample>, Vec<Sample>, Option<Vec<MixPart>>);

/// Loads the train and validation splits (generating the synthetic set first if configured),
/// applying `train_limit` (seeded random sample of the main root) and `val_limit` (first items),
/// then appends the `extra` training sources with their point mappings.
pub fn prepare_data(cfg: &TrainConfig) -> Result<PreparedData> {
    let root = &cfg.data.root;
    if !root.exists() {
        if cfg.data.generate_if_missing {
            crate::data::synthesis::generate::generate(root, &cfg.data.synth)?;
        } else {
            return Err(Error::file(
                root,
                "dataset root does not exist (set data.generate_if_missing = true to create the \
                 synthetic set there)",
            ));
        }
    }
    let mut train = load_split(root, &cfg.data.train_split, &cfg.data.points)?;
    let mut val = load_split(root, &cfg.data.val_split, &cfg.data.points)?;
    move_origin(&mut train, cfg.data.origin);
    move_origin(&mut val, cfg.data.origin);
    if cfg.data.train_limit > 0 && train.len() > cfg.data.train_limit {
        let mut idx: Vec<usize> = (0..train.len()).collect();
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5eed_da7a));
        let mut keep = idx[..cfg.data.train_limit].to_vec();
        keep.sort_unstable();
        train = keep.into_iter().map(|i| train[i].clone()).collect();
    }
    if cfg.data.val_limit > 0 {
        val.truncate(cfg.data.val_limit);
    }
    if train.is_empty() || val.is_empty() {
        return Err(Error::file(
            root,
            format!(
                "need training and validation items: `{}` has {}, `{}` has {}",
                cfg.data.train_split,
                train.len(),
                cfg.data.val_split,
                val.len()
            ),
        ));
    }
    if cfg.data.extra.is_empty() {
        return Ok((train, val, None));
    }
    let mut parts = vec![MixPart {
        range: 0..train.len(),
        weight: cfg.data.weight,
    }];
    let n_points = train[0].points.len();
    for e in &cfg.data.extra {
        if !e.root.is_dir() {
            return Err(Error::file(&e.root, "data.extra root does not exist"));
        }
        let selection = e.points.as_ref().unwrap_or(&cfg.data.points);
        let mut samples = load_split(&e.root, &e.split, selection)?;
        move_origin(&mut samples, e.origin);
        let Some(first) = samples.first() else {
            return Err(Error::file(
                e.root.join(&e.split),
                "no annotated images in this data.extra split",
            ));
        };
        if first.points.len() != n_points {
            return Err(Error::file(
                &first.landmarks_path,
                format!(
                    "{} points selected from this data.extra source, the run learns {n_points} \
                     (give the source's `points` in the run's order)",
                    first.points.len()
                ),
            ));
        }
        let start = train.len();
        train.extend(samples);
        parts.push(MixPart {
            range: start..train.len(),
            weight: e.weight,
        });
    }
    Ok((train, val, Some(parts)))
}
