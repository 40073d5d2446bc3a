//! `hmreg data synth`: a LaPa-layout dataset of synthetic faces with 68 iBUG-ordered landmarks,
//! written as `<out>/<split>/images/<stem>.jpg` and `<out>/<split>/landmarks/<stem>.txt`.
//!
//! Every image has its own generator, `ChaCha8Rng::seed_from_u64(seed)` on a stream numbered by
//! split and index, so the files are byte-identical for a seed however many threads draw them.

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::data::sources::dataset::SPLITS;
use crate::data::sources::landmarks::write_landmarks_txt;
use crate::data::synthesis::face::{render_face, SynthFace};
use crate::{Error, Result};

/// JPEG quality of the written images: high enough that compression does not blur the features.
const JPEG_QUALITY: u8 = 92;

/// Size and seed of a synthetic dataset.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynthConfig {
    pub train: usize,
    pub val: usize,
    pub test: usize,
    /// Side of the square images, in pixels.
    pub size: u32,
    pub seed: u64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            train: 800,
            val: 200,
            test: 100,
            size: 256,
            seed: 0,
        }
    }
}

impl SynthConfig {
    /// Image count of a split by name.
    pub fn count(&self, split: &str) -> usize {
        match split {
            "train" => self.train,
            "val" => self.val,
            "test" => self.test,
            _ => 0,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if !(32..=4096).contains(&self.size) {
            return Err(Error::config(format!(
                "synthetic image size must be 32..=4096 pixels, got {}",
                self.size
            )));
        }
        if self.train + self.val + self.test == 0 {
            return Err(Error::config("synthetic dataset would have no images"));
        }
        Ok(())
    }
}

/// The file stem of image `index` of a split.
pub fn synth_stem(split: &str, index: usize) -> String {
    format!("{split}_{index:05}")
}

/// Draws image `index` of `split`: the same face for the same seed, split and index.
pub fn synth_sample(cfg: &SynthConfig, split: &str, index: usize) -> SynthFace {
    let split_id = SPLITS
        .iter()
        .position(|s| *s == split)
        .unwrap_or(SPLITS.len()) as u64;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    rng.set_stream((split_id << 40) | index as u64);
    render_face(&mut rng, cfg.size)
}

/// Writes the dataset under `out` (created if needed). Splits with no images are not created.
/// Existing files of the same names are overwritten; other files are left alone, so give a new
/// or empty directory. Progress is shown only when stderr is a terminal.
pub fn generate(out: &Path, cfg: &SynthConfig) -> Result<()> {
    cfg.validate()?;
    let mut jobs = Vec::new();
    for split in SPLITS {
        let n = cfg.count(split);
        if n == 0 {
            continue;
        }
        for sub in ["images", "landmarks"] {
            let dir = out.join(split).join(sub);
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::file(&dir, format!("cannot create folder: {e}")))?;
        }
        jobs.extend((0..n).map(|i| (split, i)));
    }
    let bar = crate::progress::bar(jobs.len() as u64, "synth", true);
    // Each job writes its own two files; errors are collected in job order, so the reported one
    // does not depend on thread timing.
    let results: Vec<Result<()>> = jobs
        .par_iter()
        .map(|&(split, i)| {
            let r = write_sample(out, cfg, split, i);
            bar.inc(1);
            r
        })
        .collect();
    bar.finish_and_clear();
    results.into_iter().collect::<Result<Vec<()>>>()?;
    let meta = out.join("synth.json");
    let text = serde_json::to_string_pretty(cfg)?;
    crate::atomic::write_atomic(&meta, (text + "\n").as_bytes())
}

fn write_sample(out: &Path, cfg: &SynthConfig, split: &str, index: usize) -> Result<()> {
    let face = synth_sample(cfg, split, index);
    let stem = synth_stem(split, index);
    let img_path = out.join(split).join("images").join(format!("{stem}.jpg"));
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY)
        .encode_image(&face.image)
        .map_err(|e| Error::file(&img_path, format!("cannot encode JPEG: {e}")))?;
    crate::atomic::write_atomic(&img_path, &bytes)?;
    let lm_path = out
        .join(split)
        .join("landmarks")
        .join(format!("{stem}.txt"));
    write_landmarks_txt(&lm_path, &face.points)
}
