//! hmreg's side of `benches/onnx_check.py`: exports a full-size model to ONNX and writes, for
//! each batch size, a random input with hmreg's eval-mode heatmaps and decoded points for it
//! (`.npy`), and how long hmreg's forward pass takes.
//!
//! ```text
//! cargo run --release --example onnx_reference -- MODEL OUT_DIR [BATCH...]
//! ```
//! MODEL: `face68` (the built-in trained model), or `unet-resnet18` / `hrnet18` (the published
//! widths, 5 points, 256 input; freshly initialised, with every weight and BatchNorm statistic
//! then drawn at random so that the comparison sees well-scaled values: HRNet's own init,
//! N(0, 0.001²), leaves maps of order 1e-10). Prints one JSON line per batch size:
//! `{"batch": 8, "hmreg_ms": ...}` (median of 5 forward passes after one warm-up), on the
//! threads set by `--threads` semantics: `HMREG_THREADS` (default 2).

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use hmreg::codec::Decoder;
use hmreg::export::{export_model, to_bytes, ExportOptions};
use hmreg::models::{build, Arch, KeypointNet, ModelConfig, ParamKind, ParamStore};
use hmreg::run::{load_model, ModelSource};
use hmreg::{Error, Result};
use rand::{Rng, SeedableRng};

/// The decoder put in the graph and checked against hmreg's.
const DECODER: Decoder = Decoder::TopK { k: 9 };
const REPEAT: usize = 5;

/// A `.npy` (format 1.0) of little-endian f32 values.
fn npy(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
    // Magic (6) + version (2) + length (2) + header + newline, padded to 64 bytes.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data.iter().flat_map(|v| v.to_le_bytes()));
    out
}

fn write_npy(path: &Path, t: &Tensor) -> Result<()> {
    let data: Vec<f32> = t.flatten_all()?.to_vec1()?;
    hmreg::atomic::write_atomic(path, &npy(t.dims(), &data))
}

/// Every tensor drawn at random at a sensible scale (as tests/export_onnx.rs does).
fn randomize(store: &ParamStore) -> Result<()> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
    for p in store.params() {
        let t = p.var.as_tensor();
        let dims = t.dims().to_vec();
        let n = t.elem_count();
        let vals: Vec<f32> = match (p.kind, p.name.rsplit('.').next()) {
            (ParamKind::Weight, _) => {
                let bound = (6.0 / (n / dims[0]).max(1) as f32).sqrt();
                (0..n).map(|_| rng.random_range(-bound..bound)).collect()
            }
            (ParamKind::Norm, Some("weight")) | (ParamKind::Buffer, Some("running_var")) => {
                (0..n).map(|_| rng.random_range(0.5..1.5)).collect()
            }
            _ => (0..n).map(|_| rng.random_range(-0.2..0.2)).collect(),
        };
        p.var.set(&Tensor::from_vec(vals, dims, &Device::Cpu)?)?;
    }
    Ok(())
}

struct Model {
    cfg: ModelConfig,
    net: Box<dyn KeypointNet>,
    meta: hmreg::export::ExportMetadata,
    codec: hmreg::codec::Codec,
    _store: ParamStore,
}

fn model(name: &str) -> Result<Model> {
    if name == "face68" {
        let loaded = load_model(&ModelSource::Builtin, &Device::Cpu)?;
        let meta = hmreg::cli::export::metadata_for(&loaded, Some(&DECODER));
        return Ok(Model {
            cfg: loaded.cfg.model.clone(),
            codec: loaded.cfg.codec_with(DECODER)?,
            net: loaded.model,
            meta,
            _store: loaded.store,
        });
    }
    let arch: Arch = name.parse()?;
    let cfg = ModelConfig {
        arch,
        points: 5,
        input_size: 256,
        ..Default::default()
    };
    let mut store = ParamStore::new(&Device::Cpu, 0);
    let net = build(&cfg, &mut store)?;
    randomize(&store)?;
    let map = cfg.input_size / cfg.stride();
    let norm = hmreg::data::NormalizeConfig::default();
    let meta = hmreg::export::ExportMetadata {
        decoder: Some(DECODER.to_string()),
        ..hmreg::export::ExportMetadata::for_network(
            &cfg,
            norm.mean,
            norm.std,
            &format!("random {arch}"),
        )
    };
    let codec = hmreg::codec::Codec::new(
        cfg.input_size,
        map,
        hmreg::codec::TargetEncoder::Round,
        DECODER,
    )?;
    Ok(Model {
        cfg,
        net,
        meta,
        codec,
        _store: store,
    })
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(name), Some(out)) = (args.first(), args.get(1)) else {
        return Err(Error::config(
            "usage: onnx_reference face68|unet-resnet18|hrnet18 OUT_DIR [BATCH...]",
        ));
    };
    let batches: Vec<usize> = if args.len() > 2 {
        args[2..]
            .iter()
            .map(|b| {
                b.parse()
                    .map_err(|_| Error::config(format!("batch `{b}` is not a number")))
            })
            .collect::<Result<_>>()?
    } else {
        vec![1, 8]
    };
    let threads = std::env::var("HMREG_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    hmreg::ops::threads::set_threads(threads).map_err(Error::Msg)?;
    let out = PathBuf::from(out);
    let m = model(name)?;
    let opts = ExportOptions {
        decoder: Some(DECODER),
        ..Default::default()
    };
    let onnx = export_model(m.net.as_ref(), &m.cfg, &opts, &m.meta)?;
    hmreg::atomic::write_atomic(&out.join("model.onnx"), &to_bytes(&onnx))?;
    let s = m.cfg.input_size;
    for &n in &batches {
        let x = Tensor::randn(0f32, 1.0, (n, 3, s, s), &Device::Cpu)?;
        let maps = m.net.forward_t(&x, false)?;
        let mut times = Vec::with_capacity(REPEAT);
        for _ in 0..REPEAT {
            let t0 = Instant::now();
            let y = m.net.forward_t(&x, false)?;
            drop(y);
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        let pred = m.codec.decode(&maps)?;
        let points: Vec<f32> = pred
            .points
            .iter()
            .flat_map(|k| k.xy.iter().flatten().copied().collect::<Vec<_>>())
            .collect();
        write_npy(&out.join(format!("input_b{n}.npy")), &x)?;
        write_npy(&out.join(format!("heatmaps_b{n}.npy")), &maps)?;
        let pts = Tensor::from_vec(points, (n, m.cfg.points, 2), &Device::Cpu)?;
        write_npy(&out.join(format!("points_b{n}.npy")), &pts)?;
        println!(
            "{{\"batch\": {n}, \"hmreg_ms\": {:.2}, \"threads\": {threads}}}",
            times[REPEAT / 2]
        );
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("onnx_reference: {e}");
        std::process::exit(e.exit_code());
    }
}
