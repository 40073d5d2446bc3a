//! The data an evaluation runs on: a dataset split prepared exactly like training's validation
//! data, as [`EvalBatch`]es.

use std::path::Path;

use candle_core::Device;

use super::evaluate::EvalBatch;
use crate::data::sources::dataset::{load_split, move_origin, Sample};
use crate::data::{Batch, Loader, LoaderMode, LoaderSpec};
use crate::run::ResolvedRun;
use crate::{Error, Result};

/// A dataset split prepared exactly like training's validation data.
pub struct EvalSet {
    loader: Loader,
    file_indices: Option<Vec<usize>>,
}

impl EvalSet {
    /// The first `limit` items (0: all) of `root`'s `split`, whose landmark files put the first
    /// pixel's centre at `origin` (see [`crate::run::DataConfig::origin`]).
    pub fn open(
        cfg: &ResolvedRun,
        root: &Path,
        split: &str,
        origin: f32,
        limit: usize,
        batch_size: Option<usize>,
        device: &Device,
    ) -> Result<Self> {
        let mut samples = load_split(root, split, &cfg.data.points)?;
        move_origin(&mut samples, origin);
        if limit > 0 {
            samples.truncate(limit);
        }
        if samples.is_empty() {
            return Err(Error::file(
                root.join(split),
                "no annotated images in this split",
            ));
        }
        let got = samples[0].points.len();
        if got != cfg.model.points {
            return Err(Error::file(
                &samples[0].landmarks_path,
                format!(
                    "{got} selected points, but the model predicts {}",
                    cfg.model.points
                ),
            ));
        }
        let n_file = samples[0].file_points;
        let file_indices = Some(cfg.data.points.indices(n_file));
        let spec = LoaderSpec {
            pipeline: cfg.pipeline.clone(),
            target: cfg.target.clone(),
            batch_size: batch_size.unwrap_or(cfg.batch_size).max(1),
            mode: LoaderMode::Eval,
            seed: cfg.seed,
            file_points: None,
        };
        let loader = Loader::new(samples, &spec, device)?;
        Ok(EvalSet {
            loader,
            file_indices,
        })
    }

    pub fn len(&self) -> usize {
        self.loader.samples().len()
    }

    pub fn is_empty(&self) -> bool {
        self.loader.samples().is_empty()
    }

    pub fn samples(&self) -> &[Sample] {
        self.loader.samples()
    }

    pub fn file_indices(&self) -> Option<Vec<usize>> {
        self.file_indices.clone()
    }

    /// The points per landmark file when the model predicts every one of them in file order
    /// (a whole layout such as iBUG-68), `None` for a selection.
    pub fn whole_layout(&self) -> Option<usize> {
        let idx = self.file_indices.as_ref()?;
        idx.iter()
            .enumerate()
            .all(|(i, &j)| i == j)
            .then_some(idx.len())
    }

    /// Batches in file order, with the target maps decoded where `vs_target` asks for them.
    pub fn batches(&self, vs_target: bool) -> impl Iterator<Item = Result<EvalBatch>> + '_ {
        eval_batches(&self.loader, vs_target)
    }
}

/// The batches of a loader in evaluation mode as [`EvalBatch`]es. With `vs_target`, the batches
/// carry where the target maps peak (exact for a binary map's single 1 and a Gaussian's centre
/// pixel) for the write-up's NMAE against decoded targets.
pub fn eval_batches(
    loader: &Loader,
    vs_target: bool,
) -> impl Iterator<Item = Result<EvalBatch>> + '_ {
    loader.epoch(0).map(move |b| {
        let b: Batch = b?;
        let ids = b
            .indices
            .iter()
            .map(|&i| {
                loader
                    .samples()
                    .get(i)
                    .map_or_else(|| i.to_string(), |s| s.stem.clone())
            })
            .collect();
        Ok(EvalBatch {
            images: b.images,
            points: b.points,
            targets: vs_target.then_some(b.target_points),
            ids,
            target_maps: Some((b.targets, b.mask)),
        })
    })
}
