//! Images per second through the whole training pipeline (decode, crop + augment in one warp,
//! lighting, normalisation, target encoding, batch tensors), at 256x256, for the two recipe
//! targets (Gaussian on 256x256 maps, randomized rounding on 64x64 maps), with 1 and 2 worker
//! threads. Compare with `python benches/pipeline_reference.py DIR` (fastai on the same images).
//!
//! `cargo bench --bench pipeline -- [DIR] [--points LIST] [--batch N] [--epochs N]`
//! DIR is a split folder (images/ + landmarks/), default ../shared/data/300w-helen/train.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use hmreg::data::{load_split, Loader, LoaderMode, LoaderSpec, PipelineConfig, PointSelection};

#[path = "shared/recipe_targets.rs"]
mod recipe_targets;
use recipe_targets::recipe_targets;

struct Args {
    dir: PathBuf,
    points: PointSelection,
    batch: usize,
    epochs: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/300w-helen/train"),
        // The recipe learns 5 points; this is its 68-point analogue.
        points: "8,30,36,45,57".parse().expect("valid selection"),
        batch: 32,
        epochs: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--bench" => {}
            "--points" => {
                args.points = it
                    .next()
                    .expect("--points LIST")
                    .parse()
                    .expect("point list")
            }
            "--batch" => args.batch = it.next().expect("--batch N").parse().expect("number"),
            "--epochs" => args.epochs = it.next().expect("--epochs N").parse().expect("number"),
            other if other.starts_with("--") => panic!("unknown option {other}"),
            dir => args.dir = PathBuf::from(dir),
        }
    }
    args
}

fn main() {
    let args = parse_args();
    let dir = args
        .dir
        .canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", args.dir.display()));
    let root = dir.parent().expect("a split folder has a parent");
    let split = dir
        .file_name()
        .and_then(|s| s.to_str())
        .expect("split name");
    let samples = load_split(root, split, &args.points).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "pipeline benchmark: {} images from {}, {} points, batch {}, input 256x256, training \
         augmentation (fastai aug_transforms defaults), {} epochs per measurement",
        samples.len(),
        dir.display(),
        samples[0].points.len(),
        args.batch,
        args.epochs
    );
    let targets = recipe_targets();
    println!(
        "{:<34} {:>7} {:>7} {:>12}",
        "targets", "threads", "cache", "images/s"
    );
    for (name, target) in &targets {
        for threads in [1usize, 2] {
            for cache_mb in [0usize, 1024] {
                let cfg = PipelineConfig {
                    workers: threads,
                    cache_mb,
                    ..PipelineConfig::default()
                };
                let loader = Loader::new(
                    samples.clone(),
                    &LoaderSpec {
                        pipeline: cfg.clone(),
                        target: target.clone(),
                        batch_size: args.batch,
                        mode: LoaderMode::Train,
                        seed: 0,
                        file_points: None,
                    },
                    &Device::Cpu,
                )
                .unwrap_or_else(|e| panic!("{e}"));
                if cache_mb > 0 {
                    // Fill the cache first: this row measures the epochs after the first.
                    for b in loader.epoch(1000) {
                        b.unwrap_or_else(|e| panic!("{e}"));
                    }
                }
                let t = Instant::now();
                let mut n = 0usize;
                for epoch in 0..args.epochs {
                    for b in loader.epoch(epoch) {
                        n += b.unwrap_or_else(|e| panic!("{e}")).indices.len();
                    }
                }
                let rate = n as f64 / t.elapsed().as_secs_f64();
                let cache = if cache_mb > 0 { "warm" } else { "off" };
                println!("{name:<34} {threads:>7} {cache:>7} {rate:>12.1}");
            }
        }
    }
}
