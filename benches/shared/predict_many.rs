//! The speed bench's prediction row: `hmreg predict` over a folder of 1,000 face crops with the
//! built-in 68-point model (whole images, no detection), images/s next to a PyTorch evaluation
//! loop over the same files with the same architecture (benches/predict_reference.py).

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use hmreg::data::SynthConfig;
use hmreg::predict::{self, FaceSource, PredictOptions};
use hmreg::run::LoadedModel;

/// `hmreg predict`'s options for `loaded` without flip test or pictures.
pub fn options(loaded: &LoadedModel, faces: FaceSource, batch_size: usize) -> PredictOptions {
    PredictOptions {
        codec: loaded.cfg.codec().clone(),
        flip: None,
        batch_size,
        faces,
        out_dir: None,
        labels: false,
        two_pass: false,
    }
}

pub const CROPS: usize = 1000;

pub struct PredictRow {
    pub images: usize,
    pub hmreg: f64,
    pub pytorch: Result<f64, String>,
}

/// Writes the crops (synthetic faces, 160x160 JPEG) and measures both.
pub fn bench(threads: usize, reference: bool) -> Result<PredictRow, String> {
    let dir = std::env::temp_dir().join(format!("hmreg-crops-{}", std::process::id()));
    let synth = SynthConfig {
        train: 0,
        val: 0,
        test: CROPS,
        size: 160,
        seed: 7,
    };
    hmreg::data::synthesis::generate::generate(&dir, &synth).map_err(|e| e.to_string())?;
    let images = dir.join("test/images");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&images)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    paths.sort();
    let loaded = hmreg::run::load_model(&hmreg::run::ModelSource::Builtin, &Device::Cpu)
        .map_err(|e| e.to_string())?;
    let opts = options(&loaded, FaceSource::WholeImage, 32);
    let prepare = predict::validation_preparation(&loaded.cfg.pipeline);
    let run = |files: &[PathBuf]| -> Result<usize, String> {
        let (preds, failures) = predict::predict_files(
            loaded.model.as_ref(),
            files,
            &prepare,
            &opts,
            &Device::Cpu,
            &mut || {},
        )
        .map_err(|e| e.to_string())?;
        match failures.first() {
            Some(f) => Err(f.error.clone()),
            None => Ok(preds.len()),
        }
    };
    run(&paths[..32])?; // warm-up
    let t = Instant::now();
    let n = run(&paths)?;
    let hmreg = n as f64 / t.elapsed().as_secs_f64();
    let pytorch = if reference {
        eprintln!("measuring the PyTorch prediction loop ...");
        let threads = threads.to_string();
        let args = [images.as_os_str(), "--threads".as_ref(), threads.as_ref()];
        super::reference::images_per_second("predict_reference.py", &args)
    } else {
        Err("not asked".into())
    };
    let _ = std::fs::remove_dir_all(&dir);
    Ok(PredictRow {
        images: n,
        hmreg,
        pytorch,
    })
}

pub fn print(threads: usize, row: &PredictRow) {
    println!(
        "\nPrediction over {} face crops (built-in 68-point model, 128x128, batch 32, {threads} \
         threads): images/s",
        row.images
    );
    let theirs = row.pytorch.as_ref().ok();
    println!("| hmreg | PyTorch | hmreg/PyTorch |");
    println!("|---|---|---|");
    println!(
        "| {:.1} | {} | {} |",
        row.hmreg,
        theirs.map_or("-".into(), |t| format!("{t:.1}")),
        theirs.map_or(String::new(), |t| format!("{:.2}", row.hmreg / t))
    );
    if let Err(e) = &row.pytorch {
        eprintln!("speed: no PyTorch prediction row: {e}");
    }
}
