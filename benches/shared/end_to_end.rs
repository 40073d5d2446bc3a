//! The speed bench's end-to-end training rows: one epoch of a recipe as `hmreg train` runs it
//! (loading, augmentation, targets, forward, backward, optimiser, validation), next to the same
//! recipe in fastai (benches/train_reference.py). Images/s: the epoch's training images over the
//! wall time of the epoch including its validation pass, on both sides.

use std::path::{Path, PathBuf};

use hmreg::run::TrainConfig;
use hmreg::train::progress::OutputMode;
use hmreg::train::{train, RunOptions};

/// One recipe's row.
pub struct EndToEnd {
    pub recipe: String,
    pub images: usize,
    pub hmreg: f64,
    pub fastai: Result<f64, String>,
}

/// The recipes: the quick start (its synthetic set generated under `scratch`) and the 300-W
/// HELEN CPU recipe when ../shared holds its data.
fn recipes(scratch: &Path) -> Vec<(String, PathBuf, TrainConfig)> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let quick = Path::new("configs/quickstart.toml");
    if let Ok(mut cfg) = TrainConfig::parse(hmreg::cli::train::QUICKSTART_TOML, quick) {
        cfg.data.root = scratch.join("synth");
        out.push(("quick start".to_string(), repo.join(quick), cfg));
    }
    let helen = repo.join("configs/300w-helen-cpu.toml");
    if let Ok(mut cfg) = TrainConfig::load(&helen) {
        cfg.data.root = repo.join(&cfg.data.root);
        if cfg.data.root.is_dir() {
            out.push(("300w-helen-cpu.toml".to_string(), helen, cfg));
        }
    }
    out
}

/// One epoch of each recipe in hmreg and (when `reference`) in fastai, `threads` threads each.
pub fn bench(threads: usize, reference: bool) -> Result<Vec<EndToEnd>, String> {
    let scratch = std::env::temp_dir().join(format!("hmreg-e2e-{}", std::process::id()));
    let mut rows = Vec::new();
    for (recipe, file, mut cfg) in recipes(&scratch) {
        eprintln!("measuring one epoch of {recipe} in hmreg ...");
        cfg.epochs = 1;
        cfg.device = hmreg::device::DeviceSpec::Cpu;
        let batch = cfg.batch_size;
        let run_dir = scratch.join(format!("run-{}", rows.len()));
        let opts = RunOptions {
            run_dir,
            output: OutputMode::Quiet,
            ..Default::default()
        };
        let summary = train(cfg.clone(), &opts).map_err(|e| format!("{recipe}: {e}"))?;
        let epoch = summary.last.ok_or("no epoch record")?;
        let images = summary.train_items / batch * batch;
        let fastai = if reference {
            eprintln!("measuring one epoch of {recipe} in fastai ...");
            let threads = threads.to_string();
            let args = [
                file.as_os_str(),
                "--root".as_ref(),
                cfg.data.root.as_os_str(),
            ];
            let args = [&args[..], &["--threads".as_ref(), threads.as_ref()]].concat();
            super::reference::images_per_second("train_reference.py", &args)
        } else {
            Err("not asked".into())
        };
        rows.push(EndToEnd {
            recipe,
            images,
            hmreg: images as f64 / epoch.seconds,
            fastai,
        });
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(rows)
}

pub fn print(threads: usize, rows: &[EndToEnd]) {
    println!("\nEnd-to-end training, one epoch with validation, {threads} threads: images/s");
    println!(
        "{:<22} {:>8} {:>10} {:>10} {:>14}",
        "recipe", "images", "hmreg", "fastai", "hmreg/fastai"
    );
    for r in rows {
        let theirs = r.fastai.as_ref().ok();
        println!(
            "{:<22} {:>8} {:>10.1} {:>10} {:>14}",
            r.recipe,
            r.images,
            r.hmreg,
            theirs.map_or("-".into(), |t| format!("{t:.1}")),
            theirs.map_or(String::new(), |t| format!("{:.2}", r.hmreg / t))
        );
        if let Err(e) = &r.fastai {
            eprintln!("speed: no fastai row for {}: {e}", r.recipe);
        }
    }
    println!("(ratios > 1 mean hmreg is faster)");
}
