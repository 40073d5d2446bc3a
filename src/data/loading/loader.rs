//! Batches for training and validation: decode, transform and encode targets in parallel worker
//! threads, a few batches ahead of the consumer.
//!
//! Every random decision about sample `i` in epoch `e` comes from generators derived from
//! `(seed, e, i)` alone, and the epoch's order from `(seed, e)`: batches are identical whatever
//! the number of threads or their timing, and resuming at epoch `e` needs nothing but `e`.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::codec::{self, Codec, Encoded};
use crate::data::loading::cache::{ImageCache, SourceImage};
use crate::data::loading::pipeline_config::{PipelineConfig, TargetConfig};
use crate::data::sources::dataset::Sample;
use crate::data::sources::image_io::read_rgb;
use crate::data::sources::points::PointSelection;
use crate::data::transforms::flip;
use crate::data::transforms::geometry::{self, Plan, Source};
use crate::data::transforms::warp;
use crate::{Error, Keypoints, Result};

/// One batch, ready for a model.
pub struct Batch {
    /// (N, 3, S, S), normalised.
    pub images: Tensor,
    /// (N, L, S / stride, S / stride).
    pub targets: Tensor,
    /// (N, L): 1 where the point is visible and on its map, 0 elsewhere (the loss's mask).
    pub mask: Tensor,
    /// Points in input pixels after all transforms (invisible ones keep their coordinates).
    pub points: Vec<Keypoints>,
    /// Where each target map peaks, in input pixels, visible = the mask as booleans (see
    /// [`codec::Encoded`]): the write-up's decoded targets, without decoding the maps again.
    pub target_points: Vec<Keypoints>,
    /// Sample indices (positions in [`Loader::samples`]).
    pub indices: Vec<usize>,
}

/// One sample through the pipeline, without tensors (for pictures and tests).
pub struct Item {
    /// 3 x S x S, normalised, CHW.
    pub image: Vec<f32>,
    /// L x (S / stride)^2 target maps.
    pub target: Vec<f32>,
    pub mask: Vec<bool>,
    pub points: Keypoints,
    pub plan: Plan,
}

/// Streams of the generator derived for one sample (keeps geometry and target draws apart, so
/// changing the encoder does not change the augmentation).
const STREAM_GEOMETRY: u64 = 0;
const STREAM_TARGET: u64 = 1;
const STREAM_ORDER: u64 = 2;
const STREAM_MIX: u64 = 3;

/// The generator for `(seed, epoch, index)` and a stream: a ChaCha8 key from a SplitMix64 chain.
pub fn sample_rng(seed: u64, epoch: u64, index: u64, stream: u64) -> ChaCha8Rng {
    let mut state = seed ^ 0x6a09_e667_f3bc_c908;
    let mut next = |x: u64| {
        state = state.wrapping_add(x).wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut key = [0u8; 32];
    let words = [next(epoch), next(index), next(0), next(1)];
    for (chunk, w) in key.chunks_mut(8).zip(words) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(stream);
    rng
}

struct Inner {
    samples: Vec<Sample>,
    pipeline: PipelineConfig,
    codec: Codec,
    train: bool,
    seed: u64,
    flip_perm: Option<Vec<usize>>,
    n_points: usize,
    map_size: usize,
    cache: ImageCache,
    pool: rayon::ThreadPool,
}

/// One source of a mixed training set: the samples `range` of the loader, of which an epoch
/// takes `round(weight x len)` (every one once per whole pass, a fresh random subset for the
/// fraction; each repeat gets its own augmentation).
#[derive(Clone, Debug, PartialEq)]
pub struct MixPart {
    pub range: std::ops::Range<usize>,
    pub weight: f64,
}

pub struct Loader {
    inner: Arc<Inner>,
    /// Weighted sources of a training set (`None`: every sample once per epoch).
    mix: Option<Vec<MixPart>>,
    batch_size: usize,
    device: Device,
}

/// How a loader treats its samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoaderMode {
    /// Random crop, augmentation, flips, a shuffled order and the last partial batch dropped (as
    /// fastai does in training).
    Train,
    /// Centre crop, no augmentation, dataset order, every sample (validation, evaluation).
    Eval,
}

/// Which points of their landmark files the samples hold: flips need it to mirror a selection
/// (a point's mirror partner is known by its index in the file).
#[derive(Clone, Debug, PartialEq)]
pub struct FilePoints {
    /// Points per landmark file.
    pub count: usize,
    pub selection: PointSelection,
}

/// Everything a [`Loader`] needs besides the samples and the device, by name.
#[derive(Clone, Debug)]
pub struct LoaderSpec {
    pub pipeline: PipelineConfig,
    pub target: TargetConfig,
    pub batch_size: usize,
    pub mode: LoaderMode,
    /// Seeds the order and every augmentation and target draw.
    pub seed: u64,
    /// `None`: the samples hold every point of their files. With flips on, the points must then
    /// form a full iBUG-68 or LaPa-106 set (or match `pipeline.flip.permutation`).
    pub file_points: Option<FilePoints>,
}

impl Loader {
    pub fn new(samples: Vec<Sample>, spec: &LoaderSpec, device: &Device) -> Result<Loader> {
        let LoaderSpec {
            pipeline,
            target,
            batch_size,
            mode,
            seed,
            file_points,
        } = spec;
        let (batch_size, seed, train) = (*batch_size, *seed, *mode == LoaderMode::Train);
        pipeline.validate()?;
        let map_size = target.validate(pipeline.input_size)?;
        // The loader only encodes; the decoder is the evaluation's business.
        let codec = Codec::new(
            pipeline.input_size,
            map_size,
            target.encoder.clone(),
            codec::Decoder::default(),
        )?;
        if batch_size == 0 {
            return Err(Error::config("batch size must be at least 1"));
        }
        let Some(first) = samples.first() else {
            return Err(Error::config("the loader got no samples"));
        };
        let n_points = first.points.len();
        if n_points == 0 {
            return Err(Error::file(&first.landmarks_path, "no landmarks selected"));
        }
        if let Some(bad) = samples.iter().find(|s| s.points.len() != n_points) {
            return Err(Error::file(
                &bad.landmarks_path,
                format!(
                    "{} points selected where {} has {n_points}: every sample needs the same points",
                    bad.points.len(),
                    first.landmarks_path.display()
                ),
            ));
        }
        let flip_perm = if pipeline.flip.p > 0.0 && train {
            let (count, selection) = match file_points {
                Some(f) => (f.count, &f.selection),
                None => (n_points, &PointSelection::All),
            };
            let perm =
                flip::flip_permutation(count, selection, pipeline.flip.permutation.as_deref())?;
            if perm.len() != n_points {
                return Err(Error::config(format!(
                    "flip permutation covers {} points but the samples have {n_points}",
                    perm.len()
                )));
            }
            Some(perm)
        } else {
            None
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(pipeline.worker_threads())
            .thread_name(|i| format!("hmreg-loader-{i}"))
            .build()
            .map_err(|e| Error::Msg(format!("cannot start loader threads: {e}")))?;
        Ok(Loader {
            inner: Arc::new(Inner {
                samples,
                pipeline: pipeline.clone(),
                codec,
                train,
                seed,
                flip_perm,
                n_points,
                map_size,
                cache: ImageCache::new(pipeline.cache_mb),
                pool,
            }),
            mix: None,
            batch_size,
            device: device.clone(),
        })
    }

    pub fn samples(&self) -> &[Sample] {
        &self.inner.samples
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Points per sample (L).
    pub fn n_points(&self) -> usize {
        self.inner.n_points
    }

    /// Side of the network input.
    pub fn input_size(&self) -> usize {
        self.inner.pipeline.input_size
    }

    pub fn pipeline(&self) -> &PipelineConfig {
        &self.inner.pipeline
    }

    /// Side of the target maps (input size / stride).
    pub fn map_size(&self) -> usize {
        self.inner.map_size
    }

    /// Bytes and images currently held by the decoded-image cache.
    pub fn cache_usage(&self) -> (usize, usize) {
        self.inner.cache.usage()
    }

    /// Mixes the samples by source: `parts` cover every sample once, in order, each with its
    /// weight. Only training loaders draw by weight; evaluation takes every sample once.
    pub fn with_mix(mut self, parts: Vec<MixPart>) -> Result<Loader> {
        let n = self.inner.samples.len();
        let mut next = 0;
        for p in &parts {
            if p.range.start != next || p.range.end > n || p.range.is_empty() {
                return Err(Error::config(format!(
                    "mix parts must cover the {n} samples in order without gaps, got {:?}",
                    p.range
                )));
            }
            if !(p.weight.is_finite() && p.weight > 0.0) {
                return Err(Error::config(format!(
                    "a data source's weight must be a positive number, got {}",
                    p.weight
                )));
            }
            next = p.range.end;
        }
        if next != n {
            return Err(Error::config(format!(
                "mix parts cover {next} of the {n} samples"
            )));
        }
        self.mix = Some(parts);
        Ok(self)
    }

    pub fn batches_per_epoch(&self) -> usize {
        let n = self.epoch_len();
        if self.inner.train {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// Items per epoch (before the last partial training batch is dropped).
    fn epoch_len(&self) -> usize {
        match (&self.mix, self.inner.train) {
            (Some(parts), true) => parts.iter().map(part_count).sum(),
            _ => self.inner.samples.len(),
        }
    }

    /// The draws of an epoch, in order: sample indices, plus `pass x n` for a sample's repeats
    /// within the epoch (its augmentation is keyed by the draw, the sample is `draw % n`).
    fn epoch_draws(&self, epoch: usize) -> Vec<usize> {
        let n = self.inner.samples.len();
        let mut order: Vec<usize> = match (&self.mix, self.inner.train) {
            (Some(parts), true) => {
                let mut order = Vec::with_capacity(self.epoch_len());
                for (k, p) in parts.iter().enumerate() {
                    let mut rng = sample_rng(self.inner.seed, epoch as u64, k as u64, STREAM_MIX);
                    let mut idx: Vec<usize> = p.range.clone().collect();
                    let (count, mut pass) = (part_count(p), 0);
                    while pass * idx.len() < count {
                        idx.shuffle(&mut rng);
                        let take = (count - pass * idx.len()).min(idx.len());
                        order.extend(idx[..take].iter().map(|&i| i + pass * n));
                        pass += 1;
                    }
                }
                order
            }
            _ => (0..n).collect(),
        };
        if self.inner.train {
            order.shuffle(&mut sample_rng(
                self.inner.seed,
                epoch as u64,
                u64::MAX,
                STREAM_ORDER,
            ));
        }
        order
    }

    /// The draws of every batch of an epoch, in order ([`Loader::epoch_draws`]: sample indices
    /// unless a mix repeats samples).
    pub fn epoch_batches(&self, epoch: usize) -> Vec<Vec<usize>> {
        let order = self.epoch_draws(epoch);
        let mut batches: Vec<Vec<usize>> = order
            .chunks(self.batch_size)
            .map(<[usize]>::to_vec)
            .collect();
        if self.inner.train && batches.last().is_some_and(|b| b.len() < self.batch_size) {
            batches.pop();
        }
        batches
    }

    /// The batches of one epoch, prepared `pipeline.prefetch` batches ahead in the background.
    /// Deterministic for (seed, epoch). Dropping the iterator stops the background work.
    pub fn epoch(&self, epoch: usize) -> impl Iterator<Item = Result<Batch>> + '_ {
        let shards = Shards {
            world: 1,
            first: 0,
            devices: vec![self.device.clone()],
        };
        self.epoch_shards(epoch, shards)
            .map(|shards| shards.map(|mut s| s.remove(0)))
    }

    /// The batches of one epoch for data-parallel workers: each batch cut into `world`
    /// contiguous shards, of which this process makes `first..first + devices.len()`, each on
    /// its device. The shards of all workers cover the epoch exactly once, and every item is
    /// what [`Loader::epoch`] makes of it (an item's randomness is keyed by its draw, not its
    /// batch). A batch whose size does not divide by `world` is an error.
    pub fn epoch_shards(
        &self,
        epoch: usize,
        shards: Shards,
    ) -> impl Iterator<Item = Result<Vec<Batch>>> + '_ {
        let batches = self.epoch_batches(epoch);
        let (tx, rx) = sync_channel(self.inner.pipeline.prefetch.max(1));
        let inner = Arc::clone(&self.inner);
        let handle = std::thread::Builder::new()
            .name("hmreg-loader".into())
            .spawn(move || {
                for idx in batches {
                    let made = shards.make(&inner, &idx, epoch);
                    let failed = made.is_err();
                    if tx.send(made).is_err() || failed {
                        break;
                    }
                }
            })
            .expect("cannot spawn the loader thread");
        EpochIter {
            rx: Some(rx),
            handle: Some(handle),
        }
    }

    /// One sample of one epoch through the whole pipeline (the same result as in a batch).
    pub fn item(&self, index: usize, epoch: usize) -> Result<Item> {
        let inner = &self.inner;
        let s = inner.pipeline.input_size;
        let mut image = vec![0.0; 3 * s * s];
        let mut target = vec![0.0; inner.n_points * inner.map_size * inner.map_size];
        let (points, encoded, plan) = inner.process(index, epoch, &mut image, &mut target)?;
        Ok(Item {
            image,
            target,
            mask: encoded.mask,
            points,
            plan,
        })
    }
}

/// Items an epoch takes from a mix part.
fn part_count(p: &MixPart) -> usize {
    (p.weight * p.range.len() as f64).round() as usize
}

impl Inner {
    /// The sample a draw stands for (a mix's repeats are `pass x n` past their sample).
    fn sample_of(&self, draw: usize) -> usize {
        draw % self.samples.len().max(1)
    }

    /// The decoded source of a sample, pre-downscaled for the item transform, cached if it fits.
    fn source(&self, index: usize) -> Result<Arc<SourceImage>> {
        if let Some(img) = self.cache.get(index) {
            return Ok(img);
        }
        let sample = &self.samples[index];
        let full = read_rgb(&sample.image_path)?;
        let (w, h) = full.dimensions();
        let (nw, nh) = geometry::item_working_size(w, h, &self.pipeline, sample.face_box);
        let image = if (nw, nh) == (w, h) {
            full
        } else {
            warp::downscale(&full, nw, nh)
        };
        let src = Arc::new(SourceImage {
            image,
            original: (w, h),
        });
        self.cache.insert(index, Arc::clone(&src));
        Ok(src)
    }

    /// Prepares draw `draw` of `epoch`: sample `draw % n`, randomness keyed by the draw.
    fn process(
        &self,
        draw: usize,
        epoch: usize,
        image: &mut [f32],
        target: &mut [f32],
    ) -> Result<(Keypoints, Encoded, Plan)> {
        let index = self.sample_of(draw);
        let sample = self
            .samples
            .get(index)
            .ok_or_else(|| Error::config(format!("sample index {index} out of range")))?;
        let src = self.source(index)?;
        let source = Source {
            image: &src.image,
            original: src.original,
        };
        let mut rng = sample_rng(self.seed, epoch as u64, draw as u64, STREAM_GEOMETRY);
        let prepared = geometry::prepare(
            &source,
            &sample.points,
            sample.face_box,
            &self.pipeline,
            self.train,
            self.flip_perm.as_deref(),
            &mut rng,
            image,
        );
        let mut rng = sample_rng(self.seed, epoch as u64, draw as u64, STREAM_TARGET);
        let encoded = self.codec.encode(&prepared.points, &mut rng, target);
        Ok((prepared.points, encoded, prepared.plan))
    }

    fn batch(&self, indices: &[usize], epoch: usize, device: &Device) -> Result<Batch> {
        let n = indices.len();
        let s = self.pipeline.input_size;
        let (l, m) = (self.n_points, self.map_size);
        let (img_len, tgt_len) = (3 * s * s, l * m * m);
        let mut images = vec![0f32; n * img_len];
        let mut targets = vec![0f32; n * tgt_len];
        let results: Vec<Result<(Keypoints, Encoded, Plan)>> = self.pool.install(|| {
            images
                .par_chunks_mut(img_len)
                .zip(targets.par_chunks_mut(tgt_len))
                .zip(indices.par_iter())
                .map(|((im, tg), &i)| self.process(i, epoch, im, tg))
                .collect()
        });
        let mut points = Vec::with_capacity(n);
        let mut target_points = Vec::with_capacity(n);
        let mut mask = Vec::with_capacity(n * l);
        for r in results {
            let (p, encoded, _) = r?;
            mask.extend(encoded.mask.iter().map(|&v| if v { 1f32 } else { 0.0 }));
            points.push(p);
            target_points.push(encoded.targets);
        }
        Ok(Batch {
            images: Tensor::from_vec(images, (n, 3, s, s), device)?,
            targets: Tensor::from_vec(targets, (n, l, m, m), device)?,
            mask: Tensor::from_vec(mask, (n, l), device)?,
            points,
            target_points,
            indices: indices.iter().map(|&d| self.sample_of(d)).collect(),
        })
    }
}

/// Which shards of each batch a process makes, and on which devices (see
/// [`Loader::epoch_shards`]).
#[derive(Clone, Debug)]
pub struct Shards {
    /// Shards per batch: the number of workers in all processes.
    pub world: usize,
    /// The first shard this process makes (its first worker's rank).
    pub first: usize,
    /// One device per shard this process makes.
    pub devices: Vec<Device>,
}

impl Shards {
    fn make(&self, inner: &Inner, idx: &[usize], epoch: usize) -> Result<Vec<Batch>> {
        let w = self.world.max(1);
        if !idx.len().is_multiple_of(w) {
            return Err(Error::config(format!(
                "a batch of {} items does not divide into {w} equal shards (the batch size \
                 must be a multiple of the number of workers)",
                idx.len()
            )));
        }
        idx.chunks(idx.len() / w)
            .skip(self.first)
            .zip(&self.devices)
            .map(|(part, dev)| inner.batch(part, epoch, dev))
            .collect()
    }
}

struct EpochIter {
    rx: Option<Receiver<Result<Vec<Batch>>>>,
    handle: Option<JoinHandle<()>>,
}

impl Iterator for EpochIter {
    type Item = Result<Vec<Batch>>;

    fn next(&mut self) -> Option<Result<Vec<Batch>>> {
        let got = self.rx.as_ref()?.recv().ok();
        if got.is_none() {
            self.finish();
        }
        got
    }
}

impl EpochIter {
    fn finish(&mut self) {
        // Closing the channel first makes a producer blocked on a full queue give up.
        self.rx = None;
        if let Some(h) = self.handle.take() {
            if let Err(panic) = h.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        self.rx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
