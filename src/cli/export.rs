//! `hmreg export`: a trained model as an ONNX file, optionally with its decoder in the graph.

use std::path::PathBuf;

use clap::Args;

use super::args::ModelArgs;
use crate::codec::Decoder;
use crate::eval::{choices, published};
use crate::export::{metadata, ExportMetadata, ExportOptions, DEFAULT_OPSET};
use crate::run::{load_model, LoadedModel, ModelSource, ResolvedRun};
use crate::{Error, Result};

/// `--decode`: `none`, or a decoder with an in-graph form. (A newtype: clap reads a bare
/// `Option` field as an optional argument, not as a value that may be `none`.)
#[derive(Clone, Debug, PartialEq)]
pub struct GraphDecoder(pub Option<Decoder>);

pub fn parse_decode(s: &str) -> Result<GraphDecoder> {
    if s.trim().eq_ignore_ascii_case("none") {
        return Ok(GraphDecoder(None));
    }
    let dec: Decoder = s.parse()?;
    crate::export::decode::check_decoder(&dec)?;
    Ok(GraphDecoder(Some(dec)))
}

/// `--batch`: `dynamic` or a fixed size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchAxis(pub Option<usize>);

pub fn parse_batch(s: &str) -> Result<BatchAxis> {
    if s.trim().eq_ignore_ascii_case("dynamic") {
        return Ok(BatchAxis(None));
    }
    match s.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(BatchAxis(Some(n))),
        _ => Err(Error::config(format!(
            "--batch `{s}`: expected `dynamic` or a batch size of at least 1"
        ))),
    }
}

/// Write a trained model as an ONNX file.
#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// Without --run or --checkpoint: the built-in face68 model.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The ONNX file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// ONNX operator set: 11 to 17.
    #[arg(long, default_value_t = DEFAULT_OPSET)]
    pub opset: i64,
    /// Batch axis: `dynamic` or a fixed size.
    #[arg(long, default_value = "dynamic", value_parser = parse_batch)]
    pub batch: BatchAxis,
    /// Decoder in the graph (adds outputs `points` and `scores`): none, argmax, topk[:k],
    /// softargmax[:temperature].
    #[arg(long, default_value = "none", value_name = "DECODER", value_parser = parse_decode)]
    pub decode: GraphDecoder,
}

/// `layout` of the metadata: the known layout of the run's landmark files, and the selection.
fn layout_name(cfg: &ResolvedRun) -> String {
    let n = choices::points_in_files(cfg, &cfg.data.root, None).ok();
    let base = match n.and_then(published::layout) {
        Some((name, _)) => name.to_string(),
        None => match n {
            Some(n) => format!("custom-{n}"),
            None => "custom".into(),
        },
    };
    match &cfg.data.points {
        crate::data::PointSelection::All => base,
        sel => format!("{base} points [{sel}]"),
    }
}

/// The metadata of a loaded model: its config, where it came from, the in-graph decoder.
pub fn metadata_for(loaded: &LoadedModel, decoder: Option<&Decoder>) -> ExportMetadata {
    let cfg = &loaded.cfg;
    let norm = &cfg.pipeline.normalize;
    ExportMetadata {
        input_size: cfg.model.input_size,
        mean: norm.mean,
        std: norm.std,
        heatmap_stride: cfg.model.stride(),
        points: cfg.model.points,
        layout: layout_name(cfg),
        // Unknown when the run's data is not at hand and the layout has no built-in mirror.
        flip_pairs: choices::flip_permutation(cfg, None)
            .ok()
            .map(|p| metadata::pairs_of_permutation(&p)),
        decoder: decoder.map(|d| d.to_string()),
        point_offset: cfg.codec().point_offset(),
        arch: cfg.model.arch.to_string(),
        head: metadata::head_name(cfg.model.head),
        run: loaded.checkpoint.display().to_string(),
    }
}

pub fn run(args: ExportArgs) -> Result<()> {
    let opts = ExportOptions {
        opset: args.opset,
        batch: args.batch.0,
        decoder: args.decode.0.clone(),
    };
    // Refused options cost no model loading.
    opts.validate()?;
    let source = if args.model.run.is_none() && args.model.checkpoint.is_none() {
        ModelSource::Builtin
    } else {
        args.model.source()?
    };
    let loaded = load_model(&source, &candle_core::Device::Cpu)?;
    let meta = metadata_for(&loaded, opts.decoder.as_ref());
    let model =
        crate::export::export_model(loaded.model.as_ref(), &loaded.cfg.model, &opts, &meta)?;
    let bytes = crate::export::to_bytes(&model);
    let summary = crate::export::summarize(&bytes)?;
    crate::atomic::write_atomic(&args.out, &bytes)?;
    println!("wrote {}", args.out.display());
    println!("{summary}");
    Ok(())
}
