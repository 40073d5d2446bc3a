//! hmreg's CPU speed next to PyTorch's, in one run:
//!
//! ```text
//! cargo bench --bench speed -- --threads 2
//! ```
//!
//! For unet-resnet18 and hrnet18 (256x256, batch 8): training step (forward + backward + Adam
//! step, MSE loss), inference forward at batch 1 and 8, peak resident memory, achieved GFLOP/s
//! (3x the forward convolution FLOPs per training step, 1x per inference). Medians over `--reps`
//! runs after `--warmup` runs. Each architecture runs in a child process of its own (the bench
//! re-runs itself with `--child`), so each peak-memory figure is that model's alone. When
//! `python3 -c "import torch"` works, benches/reference_pytorch.py measures the same in PyTorch
//! with the same thread count and the table prints the ratio hmreg/PyTorch per row.
//!
//! Then `hmreg predict` on a photo: 1280x720 with 3 faces (cut from the group photo the rustface
//! package ships and scaled up), face detection plus the built-in 68-point model on the faces
//! as one batch, photos/s (no reference: PyTorch has no built-in face detector).
//!
//! Then `hmreg predict` over a folder of 1,000 face crops with the built-in model, images/s next
//! to a PyTorch evaluation loop on the same architecture (benches/predict_reference.py).
//!
//! Then one epoch of the quick start and of configs/300w-helen-cpu.toml as `hmreg train` runs
//! them, images/s next to the same recipes in fastai (benches/train_reference.py).
//!
//! Then the data pipeline's images/s (decode, augment, encode, batch; 256x256, batch 32) on a real
//! split next to the same pipeline in fastai (benches/pipeline_reference.py), and the codec's
//! encode/decode time for the training case of 64 images x 106 points on 64x64 maps (no reference:
//! fastai has no heatmap codec).
//!
//! With `python3 -c "import onnxruntime"` working too, each architecture's child also exports the
//! model it timed (`hmreg export`'s exporter: BatchNorm folded, heatmaps out) and
//! benches/ort_reference.py times ONNX Runtime on that file with the same threads (intra-op), at
//! batch 1 and `--batch`: the bar for inference on a CPU, printed as hmreg/ONNX Runtime per row.
//!
//! On a GPU (`--device cuda[:N]`, a build with `--features cuda`): the same model rows on the
//! device, with `--precision f32|bf16|f16` (mixed precision: autocast in PyTorch), each step
//! synchronised before the clock stops, and the peak device memory of each child process as
//! nvidia-smi reports it (polled every 20 ms by this process, for hmreg's and PyTorch's children
//! alike) in place of the peak RSS. `benches/gpu-check.sh` runs it that way.
//!
//! Options: `--threads N` (default: all cores), `--arch unet-resnet18|hrnet18` (repeatable),
//! `--reps R` (5), `--warmup W` (1), `--batch B` (8), `--size S` (256), `--no-reference`,
//! `--data DIR` (pipeline split, default ../shared/data/300w-helen/train),
//! `--skip models,photo,predict,pipeline,codec,e2e` (any of them),
//! `--layers` (conv layer micro-benchmark against Candle's conv2d instead of the models),
//! `--device cpu|cuda|cuda:N`, `--precision f32|bf16|f16`.

use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use hmreg::codec::{decode, encode_batch, Decoder, TargetEncoder};
use hmreg::data::{load_split, Loader, LoaderMode, LoaderSpec, PipelineConfig, PointSelection};
use hmreg::device::DeviceSpec;
use hmreg::learn::optim::{Adam, OptimConfig};
use hmreg::learn::precision::Precision;
use hmreg::learn::schedule::Hypers;
use hmreg::models::{build, Arch, ModelConfig, ParamStore};
use hmreg::ops;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[path = "shared/measure.rs"]
mod measure;
use measure::{median_ms, random_keypoints};

#[path = "shared/photos.rs"]
mod photos;

#[path = "shared/end_to_end.rs"]
mod end_to_end;

#[path = "shared/machine.rs"]
mod machine;

#[path = "shared/predict_many.rs"]
mod predict_many;

#[path = "shared/reference.rs"]
mod reference;

#[path = "shared/recipe_targets.rs"]
mod recipe_targets;
use recipe_targets::recipe_targets;

const ARCHS: [&str; 2] = ["unet-resnet18", "hrnet18"];

#[derive(Clone, Debug)]
struct Opts {
    threads: usize,
    archs: Vec<String>,
    reps: usize,
    warmup: usize,
    batch: usize,
    size: usize,
    reference: bool,
    layers: bool,
    child: bool,
    /// The child writes its model as ONNX here (for ONNX Runtime's row).
    onnx_out: Option<PathBuf>,
    data: PathBuf,
    skip: Vec<String>,
    device: DeviceSpec,
    precision: Precision,
}

const PARTS: [&str; 6] = ["models", "photo", "predict", "pipeline", "codec", "e2e"];

/// One architecture's figures, from either implementation (the Python script writes the same keys).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Row {
    arch: String,
    params: u64,
    train_ms: f64,
    infer1_ms: f64,
    infer8_ms: f64,
    /// Forward FLOPs (convolutions) for one batch.
    fwd_gflop_batch: f64,
    peak_rss_mb: f64,
    /// Peak device memory of the child process (nvidia-smi), filled in by the parent on a GPU.
    #[serde(default)]
    peak_device_mb: Option<f64>,
}

/// The command line (the module documentation lists the same options).
#[derive(clap::Parser, Debug)]
#[command(
    name = "speed",
    about = "hmreg's CPU (or GPU) speed next to PyTorch's: models, photo, predict, pipeline, codec, \
             end to end"
)]
struct Args {
    /// CPU threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// An architecture to measure (repeatable; default: both).
    #[arg(long = "arch", value_name = "NAME", value_parser = ARCHS)]
    archs: Vec<String>,
    /// Timed runs per figure (the median is reported; at least 1).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Untimed runs before them.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Training batch (at least 1).
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Input side in pixels.
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Skip the PyTorch/fastai reference measurements.
    #[arg(long)]
    no_reference: bool,
    /// The pipeline's split (default: ../shared/data/300w-helen/train).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Parts to skip, comma-separated (repeatable).
    #[arg(long, value_name = "PARTS", value_delimiter = ',', value_parser = PARTS)]
    skip: Vec<String>,
    /// The conv layer micro-benchmark against Candle's conv2d instead of the models.
    #[arg(long)]
    layers: bool,
    /// Where the models run (a CUDA build for cuda).
    #[arg(long, default_value = "cpu", value_parser = hmreg::cli::args::device_parser())]
    device: DeviceSpec,
    /// Arithmetic of the model rows (bf16 and f16 on CUDA only).
    #[arg(long, default_value = "f32", value_parser = hmreg::cli::args::precision_parser())]
    precision: Precision,
    /// One architecture's measurement, in the child process the bench starts for it.
    #[arg(long, hide = true)]
    child: bool,
    /// The child also writes the model it timed as ONNX to this file.
    #[arg(long, hide = true, value_name = "FILE")]
    onnx_out: Option<PathBuf>,
    /// Added by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

/// The options, or clap's error (printed by the caller: usage errors exit with 2, `--help` 0).
fn parse_opts() -> Result<Opts, clap::Error> {
    use clap::Parser;
    let a = Args::try_parse()?;
    let o = Opts {
        threads: a
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        archs: if a.archs.is_empty() {
            ARCHS.iter().map(|s| s.to_string()).collect()
        } else {
            a.archs
        },
        reps: a.reps.max(1),
        warmup: a.warmup,
        batch: a.batch.max(1),
        size: a.size,
        reference: !a.no_reference,
        layers: a.layers,
        child: a.child,
        onnx_out: a.onnx_out,
        data: a.data.unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/300w-helen/train")
        }),
        skip: a.skip,
        device: a.device,
        precision: a.precision,
    };
    o.precision
        .check_device(&o.device.to_string())
        .map_err(|e| Args::command_error(e.to_string()))?;
    Ok(o)
}

impl Args {
    fn command_error(msg: String) -> clap::Error {
        use clap::CommandFactory;
        Args::command().error(clap::error::ErrorKind::ValueValidation, msg)
    }
}

/// Detection plus the built-in model's landmarks on a 1280x720 photo with 3 faces, read from a
/// PNG file each time (as `hmreg predict` does): (faces found, photos per second).
fn bench_photo(o: &Opts) -> Result<(usize, f64), String> {
    use hmreg::predict::{self, FaceSource};
    let group =
        photos::group_photo().map_err(|e| format!("the rustface package's group photo: {e}"))?;
    let photo = photos::three_faces(&group);
    let path = std::env::temp_dir().join(format!("hmreg-bench-photo-{}.png", std::process::id()));
    photo.save(&path).map_err(|e| e.to_string())?;
    let loaded = hmreg::run::load_model(&hmreg::run::ModelSource::Builtin, &Device::Cpu)
        .map_err(|e| e.to_string())?;
    // The upright search and one pass, as before two-pass prediction (benches/photos.rs has
    // the other modes and the 8000x8000 photo).
    let faces = FaceSource::Detect(predict::SearchOptions {
        tilts: Vec::new(),
        ..Default::default()
    });
    let opts = predict_many::options(&loaded, faces, 8);
    let prepare = predict::validation_preparation(&loaded.cfg.pipeline);
    let paths = [path.clone()];
    let mut faces = 0;
    let mut once = || -> Result<(), String> {
        let (preds, failures) = predict::predict_files(
            loaded.model.as_ref(),
            &paths,
            &prepare,
            &opts,
            &Device::Cpu,
            &mut || {},
        )
        .map_err(|e| e.to_string())?;
        if let Some(f) = failures.first() {
            return Err(f.error.clone());
        }
        faces = preds[0].faces.len();
        Ok(())
    };
    // The first call (also a warm-up) reports what fails; the timed calls keep the first error.
    once()?;
    let mut failed = None;
    let ms = median_ms(o.warmup.saturating_sub(1), o.reps, || {
        if let Err(e) = once() {
            failed.get_or_insert(e);
        }
    });
    let _ = std::fs::remove_file(&path);
    match failed {
        Some(e) => Err(e),
        None => Ok((faces, 1000.0 / ms)),
    }
}

/// Peak resident set size of this process (VmHWM), in MB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn random_tensor(rng: &mut ChaCha8Rng, dims: &[usize], lo: f32, hi: f32) -> Tensor {
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(lo..hi)).collect();
    Tensor::from_vec(v, dims, &Device::Cpu).expect("tensor")
}

/// Measures one architecture in this process.
fn bench_arch(arch: &str, o: &Opts) -> candle_core::Result<Row> {
    let msg = |e: hmreg::Error| candle_core::Error::Msg(e.to_string());
    let dev = o.device.open().map_err(msg)?;
    let cfg = ModelConfig {
        arch: if arch == "hrnet18" {
            Arch::Hrnet18
        } else {
            Arch::UnetResnet18
        },
        points: 5,
        input_size: o.size,
        width: 1.0,
        heatmap_stride: 0,
        head: hmreg::models::HeadKind::Binary,
        ..Default::default()
    };
    let mut store = ParamStore::new(&dev, 0);
    let model = build(&cfg, &mut store).map_err(msg)?;
    let params: u64 = store
        .params()
        .iter()
        .filter(|p| p.is_trainable())
        .map(|p| p.var.elem_count() as u64)
        .sum();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = random_tensor(&mut rng, &[o.batch, 3, o.size, o.size], -2.0, 2.0)
        .to_device(&dev)?
        .to_dtype(o.precision.dtype())?;
    let out_dims = model.forward_t(&x.narrow(0, 0, 1)?, false)?.dims().to_vec();
    let mut tdims = out_dims.clone();
    tdims[0] = o.batch;
    let target = random_tensor(&mut rng, &tdims, 0.0, 1.0).to_device(&dev)?;
    let mut opt = Adam::new(&store, &OptimConfig::default()).map_err(msg)?;
    if o.precision == Precision::F16 {
        opt.enable_loss_scaling();
    }
    let hypers = Hypers {
        lrs: vec![1e-4; 3],
        mom: 0.9,
        frozen: false,
    };
    // A GPU runs asynchronously: the clock stops when the device has finished.
    let sync = || dev.synchronize().expect("device synchronisation");
    let mut train_step = || -> candle_core::Result<()> {
        let y = model.forward_t(&x, true)?.to_dtype(DType::F32)?;
        let loss = ((y - &target)?.sqr()?.mean_all()? * opt.loss_scale())?;
        let grads = loss.backward()?;
        opt.step(&grads, &hypers).map_err(msg)?;
        Ok(())
    };
    let train_ms = median_ms(o.warmup, o.reps, || {
        train_step().expect("train step");
        sync();
    });
    let infer = |b: usize| -> f64 {
        let xb = x.narrow(0, 0, b).expect("narrow");
        median_ms(o.warmup, o.reps, || {
            model.forward_t(&xb, false).expect("forward");
            sync();
        })
    };
    let infer1_ms = infer(1);
    let infer8_ms = infer(o.batch);
    // The FLOP count comes from the CPU kernels' counter: one image through a CPU copy.
    let macs = {
        let mut cpu_store = ParamStore::new(&Device::Cpu, 0);
        let cpu_model = build(&cfg, &mut cpu_store).map_err(msg)?;
        let one = random_tensor(&mut rng, &[1, 3, o.size, o.size], -2.0, 2.0);
        let before = ops::conv::forward_macs();
        cpu_model.forward_t(&one, false)?;
        (ops::conv::forward_macs() - before) * o.batch as u64
    };
    if let Some(path) = &o.onnx_out {
        write_onnx(model.as_ref(), &cfg, path).map_err(msg)?;
    }
    Ok(Row {
        arch: arch.to_string(),
        params,
        train_ms,
        infer1_ms,
        infer8_ms,
        fwd_gflop_batch: 2.0 * macs as f64 / 1e9,
        peak_rss_mb: peak_rss_mb(),
        peak_device_mb: None,
    })
}

/// The measurement options both implementations' children take.
fn shared_args(o: &Opts) -> Vec<String> {
    [
        ("--threads", o.threads.to_string()),
        ("--reps", o.reps.to_string()),
        ("--warmup", o.warmup.to_string()),
        ("--batch", o.batch.to_string()),
        ("--size", o.size.to_string()),
        ("--device", o.device.to_string()),
        ("--precision", o.precision.to_string()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_string(), v])
    .collect()
}

/// Runs `cmd` to its end and reads its last JSON row. On a GPU, polls nvidia-smi meanwhile and
/// records the device memory used at the peak, less what was used before the command started.
fn run_measured(mut cmd: Command, o: &Opts, what: &str) -> Result<Row, String> {
    let gpu = match o.device {
        DeviceSpec::Cuda(i) => Some(i),
        DeviceSpec::Cpu => None,
    };
    let used_mb = |i: usize| -> Option<f64> {
        let out = Command::new("nvidia-smi")
            .args(["--query-gpu=memory.used", "--format=csv,noheader,nounits"])
            .args(["-i", &i.to_string()])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    let baseline = gpu.and_then(used_mb);
    let done = std::sync::atomic::AtomicBool::new(false);
    let (out, peak) = std::thread::scope(|scope| {
        let poller = scope.spawn(|| {
            let mut peak = f64::NAN;
            while let Some(i) = gpu {
                if let Some(mb) = used_mb(i) {
                    peak = peak.max(mb);
                }
                if done.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            peak
        });
        let out = cmd.output();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (out, poller.join().unwrap_or(f64::NAN))
    });
    let out = out.map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut row = reference::last_json::<Row>(&String::from_utf8_lossy(&out.stdout))?;
    if let Some(base) = baseline {
        row.peak_device_mb = Some(peak - base);
    }
    Ok(row)
}

/// Runs this bench again as a child for one architecture and reads its JSON row; with `onnx`,
/// the child also exports its model there.
fn run_child(arch: &str, o: &Opts, onnx: Option<&std::path::Path>) -> Result<Row, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.args(["--child", "--arch", arch]).args(shared_args(o));
    if let Some(path) = onnx {
        cmd.arg("--onnx-out").arg(path);
    }
    run_measured(cmd, o, &format!("hmreg child for {arch}"))
}

/// The timed network as `hmreg export` writes it (dynamic batch, heatmaps only).
fn write_onnx(
    net: &dyn hmreg::models::KeypointNet,
    cfg: &ModelConfig,
    path: &std::path::Path,
) -> hmreg::Result<()> {
    let norm = hmreg::data::NormalizeConfig::default();
    let meta = hmreg::export::ExportMetadata::for_network(
        cfg,
        norm.mean,
        norm.std,
        "speed bench (random weights)",
    );
    let opts = hmreg::export::ExportOptions::default();
    let model = hmreg::export::export_model(net, cfg, &opts, &meta)?;
    hmreg::atomic::write_atomic(path, &hmreg::export::to_bytes(&model))
}

/// ONNX Runtime's inference times on an exported model (benches/ort_reference.py).
#[derive(Clone, Debug, Deserialize, Serialize)]
struct OrtRow {
    onnxruntime: String,
    infer1_ms: f64,
    infer8_ms: f64,
}

/// Whether ONNX Runtime's row can be measured: the CPU, and onnxruntime importable.
fn ort_available(o: &Opts) -> bool {
    o.reference && o.device == DeviceSpec::Cpu && reference::python_imports("onnxruntime")
}

fn run_ort(model: &std::path::Path, o: &Opts) -> Result<OrtRow, String> {
    let mut args = vec!["--model".to_string(), model.display().to_string()];
    args.extend(
        [
            ("--threads", o.threads),
            ("--batch", o.batch),
            ("--size", o.size),
            ("--reps", o.reps),
            ("--warmup", o.warmup),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_string(), v.to_string()]),
    );
    reference::run_script("ort_reference.py", &args)
}

/// hmreg's inference rows next to ONNX Runtime's on the same exported network.
fn print_ort_table(o: &Opts, rows: &[(Row, OrtRow)]) {
    let Some((_, first)) = rows.first() else {
        return;
    };
    println!(
        "
ONNX Runtime {} on the file hmreg's exporter writes (BatchNorm folded), CPU, {} \
         intra-op threads, median of {} runs after {} warm-up",
        first.onnxruntime, o.threads, o.reps, o.warmup
    );
    println!(
        "{:<14} {:<26} {:>12} {:>12} {:>14}",
        "model", "row", "hmreg", "onnxruntime", "hmreg/ort"
    );
    for (h, r) in rows {
        for (i, (name, mine, theirs)) in [
            ("infer batch 1 (ms)".to_string(), h.infer1_ms, r.infer1_ms),
            (
                format!("infer batch {} (ms)", o.batch),
                h.infer8_ms,
                r.infer8_ms,
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let model = if i == 0 { h.arch.as_str() } else { "" };
            println!(
                "{model:<14} {name:<26} {mine:>12.1} {theirs:>12.1} {:>14.2}",
                mine / theirs
            );
        }
    }
}

/// PyTorch's rows, when torch is importable.
fn run_reference(arch: &str, o: &Opts) -> Result<Row, String> {
    if !reference::python_imports("torch") {
        return Err("python3 cannot import torch (pip install torch fastai)".into());
    }
    let script = reference::script_path("reference_pytorch.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .args(["--json", "--arch", arch])
        .args(shared_args(o));
    run_measured(cmd, o, "reference script")
}

fn print_table(o: &Opts, rows: &[(Row, Option<Row>)]) {
    let place = match o.device {
        DeviceSpec::Cpu => format!("CPU, {} threads", o.threads),
        gpu => format!("{gpu}, {}", o.precision),
    };
    println!(
        "\n{place}, batch {}, {}x{}, median of {} runs after {} warm-up",
        o.batch, o.size, o.size, o.reps, o.warmup
    );
    println!(
        "{:<14} {:<26} {:>12} {:>12} {:>14}",
        "model", "row", "hmreg", "pytorch", "hmreg/pytorch"
    );
    for (h, p) in rows {
        let b = o.batch;
        type Metric = fn(&Row) -> f64;
        let lines: [(String, Metric); 8] = [
            ("train step (ms)".into(), |r| r.train_ms),
            ("infer batch 1 (ms)".into(), |r| r.infer1_ms),
            (format!("infer batch {b} (ms)"), |r| r.infer8_ms),
            ("peak RSS (MB)".into(), |r| r.peak_rss_mb),
            ("peak device memory (MB)".into(), |r| {
                r.peak_device_mb.unwrap_or(f64::NAN)
            }),
            ("train GFLOP/s".into(), |r| {
                3.0 * r.fwd_gflop_batch / r.train_ms * 1e3
            }),
            (format!("infer b{b} GFLOP/s"), |r| {
                r.fwd_gflop_batch / r.infer8_ms * 1e3
            }),
            ("params".into(), |r| r.params as f64),
        ];
        for (i, (name, f)) in lines.iter().enumerate() {
            let hv = f(h);
            if name.contains("device") && o.device == DeviceSpec::Cpu {
                continue;
            }
            let pv = p.as_ref().map(f);
            let model = if i == 0 { h.arch.as_str() } else { "" };
            let fmt = |v: f64| {
                if name != "params" && (name.contains("(ms)") || name.contains("GFLOP")) {
                    format!("{v:.1}")
                } else {
                    format!("{v:.0}")
                }
            };
            let ratio = match pv {
                Some(pv) if !name.contains("GFLOP") && name != "params" => {
                    format!("{:.2}", hv / pv)
                }
                _ => String::new(),
            };
            println!(
                "{:<14} {:<26} {:>12} {:>12} {:>14}",
                model,
                name,
                fmt(hv),
                pv.map(fmt).unwrap_or_else(|| "-".into()),
                ratio
            );
        }
    }
    println!(
        "GFLOP/s counts the convolutions' forward FLOPs (x3 for a training step); ratios > 1 mean \
         hmreg is slower or larger."
    );
}

/// Images per second through hmreg's training pipeline, one epoch over the split per target.
fn bench_pipeline(o: &Opts, batch: usize) -> Result<Vec<(String, f64)>, String> {
    let dir = o
        .data
        .canonicalize()
        .map_err(|e| format!("{}: {e}", o.data.display()))?;
    let (root, split) = match (dir.parent(), dir.file_name().and_then(|s| s.to_str())) {
        (Some(r), Some(s)) => (r.to_path_buf(), s.to_string()),
        _ => return Err(format!("{}: not a split folder", dir.display())),
    };
    let points: PointSelection = "8,30,36,45,57".parse().map_err(|e| format!("{e}"))?;
    let samples = load_split(&root, &split, &points).map_err(|e| e.to_string())?;
    let cfg = PipelineConfig {
        workers: o.threads,
        cache_mb: 0,
        ..PipelineConfig::default()
    };
    let mut rows = Vec::new();
    for (name, target) in recipe_targets() {
        let loader = Loader::new(
            samples.clone(),
            &LoaderSpec {
                pipeline: cfg.clone(),
                target: target.clone(),
                batch_size: batch,
                mode: LoaderMode::Train,
                seed: 0,
                file_points: None,
            },
            &Device::Cpu,
        )
        .map_err(|e| e.to_string())?;
        let t = Instant::now();
        let mut n = 0usize;
        for b in loader.epoch(0) {
            n += b.map_err(|e| e.to_string())?.indices.len();
        }
        rows.push((name.to_string(), n as f64 / t.elapsed().as_secs_f64()));
    }
    Ok(rows)
}

/// fastai's images/s on the same split, from benches/pipeline_reference.py's table.
fn reference_pipeline(o: &Opts, batch: usize) -> Result<Vec<(String, f64)>, String> {
    let script = reference::script_path("pipeline_reference.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&o.data)
        .args(["--epochs", "1", "--batch", &batch.to_string()])
        .args(["--threads", &o.threads.to_string()])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "pipeline reference failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    recipe_targets()
        .iter()
        .map(|(name, _)| {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().last()?.parse().ok())
                .map(|rate| (name.to_string(), rate))
                .ok_or_else(|| format!("no row for `{name}` in: {text}"))
        })
        .collect()
}

/// Encode and decode times for the training case: 64 images x 106 points on 64x64 maps.
fn bench_codec(o: &Opts) -> candle_core::Result<Vec<(String, f64)>> {
    let (n, l, w) = (64usize, 106usize, 64usize);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let kps = random_keypoints(n, l, w, w, &mut rng);
    let mut out = vec![0f32; n * l * w * w];
    let mut rows = Vec::new();
    let gaussian = TargetEncoder::Gaussian {
        sigma: 2.0,
        subpixel: false,
    };
    for enc in [gaussian.clone(), TargetEncoder::RandomizedRounding] {
        let ms = median_ms(o.warmup.max(1), o.reps, || {
            black_box(encode_batch(&enc, &kps, w, w, &mut rng, &mut out));
        });
        rows.push((format!("encode {enc}"), ms));
    }
    encode_batch(&gaussian, &kps, w, w, &mut rng, &mut out);
    let maps = Tensor::from_slice(&out, (n, l, w, w), &Device::Cpu)?;
    for dec in [Decoder::Argmax, Decoder::TopK { k: 9 }] {
        let ms = median_ms(o.warmup.max(1), o.reps, || {
            black_box(decode(&maps, &dec).expect("decode"));
        });
        rows.push((format!("decode {dec}"), ms));
    }
    Ok(rows)
}

fn print_pipeline(
    o: &Opts,
    batch: usize,
    ours: &[(String, f64)],
    theirs: Option<&[(String, f64)]>,
) {
    println!(
        "\nData pipeline on {} (5 points, 256x256, batch {batch}, {} threads, one epoch, no cache): images/s",
        o.data.display(),
        o.threads
    );
    println!(
        "{:<34} {:>12} {:>12} {:>14}",
        "targets", "hmreg", "fastai", "hmreg/fastai"
    );
    for (name, rate) in ours {
        let theirs = theirs.and_then(|t| t.iter().find(|(n, _)| n == name).map(|r| r.1));
        println!(
            "{:<34} {:>12.1} {:>12} {:>14}",
            name,
            rate,
            theirs.map_or("-".into(), |r| format!("{r:.1}")),
            theirs.map_or(String::new(), |r| format!("{:.2}", rate / r))
        );
    }
    println!("(images/s: ratios > 1 mean hmreg is faster)");
}

fn print_codec(o: &Opts, rows: &[(String, f64)]) {
    println!(
        "\nCodec: 64 images x 106 points on 64x64 maps, {} threads, median of {} runs (no \
         reference: fastai has no heatmap codec)",
        o.threads, o.reps
    );
    println!("{:<34} {:>12} {:>14}", "case", "ms / batch", "maps / s");
    for (name, ms) in rows {
        println!(
            "{:<34} {:>12.2} {:>14.0}",
            name,
            ms,
            (64 * 106) as f64 / ms * 1e3
        );
    }
}

/// Convolution layers of the two models (ResNet18/UNet, then HRNet-W18, at a 256x256 input),
/// batch `--batch`: each CPU algorithm forced in turn, the direct kernel at each vector width
/// this machine runs, and Candle's conv2d.
/// How `--layers` runs a convolution.
#[derive(Clone, Copy, PartialEq)]
enum Layer {
    /// hmreg's op with one algorithm (and vector width) forced, its weight gradient following.
    Forced(ops::ConvAlgo, Option<ops::VectorWidth>),
    /// hmreg's op as a model runs it: the usual algorithm, width and weight gradient.
    Usual,
    /// Candle's own convolution.
    Candle,
}

impl Layer {
    fn run<R>(self, f: impl FnOnce() -> R) -> R {
        match self {
            Layer::Forced(algo, Some(width)) => {
                ops::with_vector_width(width, || ops::with_conv_algo(algo, f))
            }
            Layer::Forced(algo, None) => ops::with_conv_algo(algo, f),
            Layer::Usual | Layer::Candle => f(),
        }
    }
}

fn bench_layers(o: &Opts) {
    use hmreg::ops::{conv_direct, conv_winograd, simd, ConvAlgo, VectorWidth};
    // (C_in, H = W, C_out, kernel, stride, padding, model)
    let shapes = [
        (3, 256, 64, 7, 2, 3, "resnet stem"),
        (64, 64, 64, 3, 1, 1, "resnet layer1"),
        (64, 64, 128, 3, 2, 1, "resnet down"),
        (128, 32, 128, 3, 1, 1, "resnet layer2"),
        (256, 16, 256, 3, 1, 1, "resnet layer3"),
        (512, 8, 512, 3, 1, 1, "resnet layer4"),
        (256, 64, 64, 1, 1, 0, "unet 1x1"),
        (96, 256, 96, 3, 1, 1, "unet decoder"),
        (3, 256, 64, 3, 2, 1, "hrnet stem 1"),
        (64, 128, 64, 3, 2, 1, "hrnet stem 2"),
        (64, 64, 64, 3, 1, 1, "hrnet layer1"),
        (256, 64, 18, 3, 1, 1, "hrnet transition"),
        (18, 64, 18, 3, 1, 1, "hrnet branch 1"),
        (36, 32, 36, 3, 1, 1, "hrnet branch 2"),
        (72, 16, 72, 3, 1, 1, "hrnet branch 3"),
        (144, 8, 144, 3, 1, 1, "hrnet branch 4"),
        (18, 64, 36, 3, 2, 1, "hrnet fuse down"),
        (36, 32, 72, 3, 2, 1, "hrnet fuse down"),
        (72, 16, 144, 3, 2, 1, "hrnet fuse down"),
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let n = o.batch;
    println!(
        "conv layers, batch {n}, {} threads: forward / forward+backward ms (GFLOP/s); * the \
         usual choice",
        o.threads
    );
    let mut variants = vec![("gemm", Layer::Forced(ConvAlgo::Gemm, None))];
    for w in simd::available() {
        let name = if w == VectorWidth::Avx2 {
            "direct AVX2"
        } else {
            "direct AVX-512"
        };
        variants.push((name, Layer::Forced(ConvAlgo::Direct, Some(w))));
    }
    variants.push(("winograd", Layer::Forced(ConvAlgo::Winograd, None)));
    variants.push(("usual", Layer::Usual));
    variants.push(("candle", Layer::Candle));
    for (c, h, co, k, s, p, model) in shapes {
        let x = Var::from_tensor(&random_tensor(&mut rng, &[n, c, h, h], -1.0, 1.0)).expect("x");
        let w = Var::from_tensor(&random_tensor(&mut rng, &[co, c, k, k], -0.1, 0.1)).expect("w");
        let geom = hmreg::ops::conv_cpu::ConvGeom {
            n,
            c_in: c,
            h,
            w: h,
            c_out: co,
            kh: k,
            kw: k,
            stride: s,
            padding: p,
        };
        let oh = geom.out_h();
        let gflop = 2.0 * (n * co * oh * oh * c * k * k) as f64 / 1e9;
        let usual = hmreg::ops::conv_algo::forward(&geom);
        println!("{model}: c{c} {h}x{h} -> {co} k{k} s{s} ({gflop:.2} GFLOP)");
        for &(name, variant) in &variants {
            let supported = match variant {
                Layer::Forced(ConvAlgo::Direct, _) => conv_direct::supports(&geom),
                Layer::Forced(ConvAlgo::Winograd, _) => conv_winograd::supports(&geom),
                _ => true,
            };
            // Candle's own backward would run a transposed conv for hours at full resolution.
            if !supported || (variant == Layer::Candle && h * h * c >= 128 * 128 * 96) {
                continue;
            }
            let run = |bwd: bool| {
                let y = variant
                    .run(|| match variant {
                        Layer::Candle => x.as_tensor().conv2d(w.as_tensor(), p, s, 1, 1),
                        _ => ops::conv2d(x.as_tensor(), w.as_tensor(), None, s, p, 1),
                    })
                    .expect("conv");
                if bwd {
                    variant
                        .run(|| y.sum_all().and_then(|l| l.backward()))
                        .expect("backward");
                }
            };
            let f = median_ms(o.warmup, o.reps, || run(false));
            let fb = median_ms(o.warmup, o.reps, || run(true));
            let usual_width = conv_direct::tile_width(&geom);
            let mark = match variant {
                Layer::Forced(algo, width)
                    if algo == usual && width.is_none_or(|w| w == usual_width) =>
                {
                    "*"
                }
                _ => " ",
            };
            println!(
                "  {mark}{name:<15} {f:8.1} / {fb:8.1}  ({:5.0} / {:5.0})",
                gflop / f * 1e3,
                3.0 * gflop / fb * 1e3
            );
        }
    }
}

fn main() {
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => e.exit(),
    };
    ops::alloc::tune_allocator();
    ops::threads::limit_candle_spinning();
    if let Err(e) = ops::threads::set_threads(o.threads) {
        eprintln!("speed: {e}");
        std::process::exit(2);
    }
    if o.layers {
        bench_layers(&o);
        return;
    }
    if o.child {
        match bench_arch(&o.archs[0], &o) {
            Ok(row) => println!("{}", serde_json::to_string(&row).expect("json")),
            Err(e) => {
                eprintln!("speed: {}: {e}", o.archs[0]);
                std::process::exit(1);
            }
        }
        return;
    }
    println!("{}", machine::header(o.threads));
    let skip = |part: &str| o.skip.iter().any(|s| s == part);
    let mut rows = Vec::new();
    let archs = if skip("models") {
        &[][..]
    } else {
        &o.archs[..]
    };
    let ort = !archs.is_empty() && ort_available(&o);
    if o.reference && !archs.is_empty() && !ort {
        eprintln!("speed: no ONNX Runtime row (CPU only; pip install onnxruntime)");
    }
    let mut ort_rows = Vec::new();
    for arch in archs {
        eprintln!("measuring hmreg {arch} ...");
        let onnx = ort.then(|| {
            std::env::temp_dir().join(format!("hmreg-speed-{arch}-{}.onnx", std::process::id()))
        });
        let h = match run_child(arch, &o, onnx.as_deref()) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("speed: {e}");
                std::process::exit(1);
            }
        };
        if let Some(file) = &onnx {
            eprintln!("measuring onnxruntime {arch} ...");
            match run_ort(file, &o) {
                Ok(r) => {
                    eprintln!("ort:     {}", serde_json::to_string(&r).unwrap_or_default());
                    ort_rows.push((h.clone(), r));
                }
                Err(e) => eprintln!("speed: no ONNX Runtime row: {e}"),
            }
            let _ = std::fs::remove_file(file);
        }
        let p = if o.reference {
            eprintln!("measuring pytorch {arch} ...");
            match run_reference(arch, &o) {
                Ok(r) => Some(r),
                Err(e) => {
                    eprintln!("speed: no PyTorch reference: {e}");
                    None
                }
            }
        } else {
            None
        };
        // Partial results survive an interrupted run.
        eprintln!("hmreg:   {}", serde_json::to_string(&h).unwrap_or_default());
        if let Some(p) = &p {
            eprintln!("pytorch: {}", serde_json::to_string(p).unwrap_or_default());
        }
        rows.push((h, p));
    }
    if !rows.is_empty() {
        print_table(&o, &rows);
    }
    print_ort_table(&o, &ort_rows);
    if !skip("photo") {
        match bench_photo(&o) {
            Ok((faces, per_s)) => {
                println!(
                    "\n`hmreg predict` on a 1280x720 photo, {} threads:",
                    o.threads
                );
                println!("| faces found | photos/s | ms per photo |");
                println!("|---|---|---|");
                println!("| {faces} | {per_s:.2} | {:.0} |", 1000.0 / per_s);
            }
            Err(e) => eprintln!("speed: photo: {e}"),
        }
    }
    if !skip("predict") {
        eprintln!(
            "measuring hmreg predict over {} crops ...",
            predict_many::CROPS
        );
        match predict_many::bench(o.threads, o.reference) {
            Ok(row) => predict_many::print(o.threads, &row),
            Err(e) => eprintln!("speed: prediction row skipped: {e}"),
        }
    }
    if !skip("e2e") {
        match end_to_end::bench(o.threads, o.reference) {
            Ok(rows) => end_to_end::print(o.threads, &rows),
            Err(e) => eprintln!("speed: end-to-end rows skipped: {e}"),
        }
    }
    if !skip("pipeline") {
        let batch = 32;
        eprintln!("measuring the hmreg data pipeline ...");
        match bench_pipeline(&o, batch) {
            Ok(ours) => {
                let theirs = if o.reference {
                    eprintln!("measuring the fastai data pipeline ...");
                    reference_pipeline(&o, batch)
                        .map_err(|e| eprintln!("speed: no fastai reference: {e}"))
                        .ok()
                } else {
                    None
                };
                print_pipeline(&o, batch, &ours, theirs.as_deref());
            }
            Err(e) => eprintln!("speed: pipeline skipped: {e}"),
        }
    }
    if !skip("codec") {
        match bench_codec(&o) {
            Ok(r) => print_codec(&o, &r),
            Err(e) => eprintln!("speed: codec: {e}"),
        }
    }
}
