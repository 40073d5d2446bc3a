//! ONNX export of a trained network: the graph of its inference-mode forward pass
//! ([`crate::models::describe`], BatchNorm folded into the convolutions), optionally the
//! decoder in the graph ([`decode`]), and the metadata a deployer needs ([`metadata`]).
//!
//! - [`onnx_proto`]: ONNX's protobuf messages (prost derive, no protoc);
//! - [`graph`]: nodes and initializers from the network's operations;
//! - [`decode`]: argmax, top-k and soft-argmax as nodes;
//! - [`metadata`]: the file's metadata properties;
//! - [`check`]: the written bytes read back and summarised.

pub mod check;
pub mod decode;
pub mod graph;
pub mod metadata;
pub mod onnx_proto;

use std::ops::RangeInclusive;

use prost::Message;

pub use check::{summarize, GraphSummary};
pub use metadata::ExportMetadata;

use crate::codec::Decoder;
use crate::models::{KeypointNet, ModelConfig};
use crate::{Error, Result};
use onnx_proto::{
    data_type, Dimension, GraphProto, ModelProto, OperatorSetIdProto, TensorShapeProto,
    TensorTypeProto, TypeProto, ValueInfoProto,
};

/// The opset written by default (ONNX 1.12, what current runtimes and timm's exports use).
pub const DEFAULT_OPSET: i64 = 17;
/// The opsets the exporter writes: 11 (MMDeploy's pose configs) to 17. The operators it uses
/// keep their meaning across that range except where [`graph`] and [`decode`] handle the change.
pub const OPSETS: RangeInclusive<i64> = 11..=17;

/// Name of the symbolic batch dimension.
pub const BATCH_DIM: &str = "N";

/// How to export.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportOptions {
    pub opset: i64,
    /// A fixed batch size; `None` for a dynamic batch axis.
    pub batch: Option<usize>,
    /// The decoder to put in the graph (outputs `points`, `scores`); `None` for heatmaps only.
    pub decoder: Option<Decoder>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            opset: DEFAULT_OPSET,
            batch: None,
            decoder: None,
        }
    }
}

impl ExportOptions {
    /// Refuses what the exporter cannot write, before any work.
    pub fn validate(&self) -> Result<()> {
        if !OPSETS.contains(&self.opset) {
            return Err(Error::config(format!(
                "opset {} is not supported (the exporter writes opsets {} to {})",
                self.opset,
                OPSETS.start(),
                OPSETS.end()
            )));
        }
        if self.batch == Some(0) {
            return Err(Error::config("--batch must be at least 1"));
        }
        if let Some(d) = &self.decoder {
            decode::check_decoder(d)?;
        }
        Ok(())
    }
}

/// The IR version that goes with an opset (ONNX's versioning table): 6 for opsets 11-12, 7 for
/// 13-14, 8 for 15-17.
fn ir_version(opset: i64) -> i64 {
    match opset {
        ..=12 => 6,
        13..=14 => 7,
        _ => 8,
    }
}

/// A float tensor's type with `dims`: the batch axis symbolic or fixed.
fn value_info(name: &str, batch: Option<usize>, dims: &[usize], doc: &str) -> ValueInfoProto {
    let mut dim = vec![match batch {
        Some(n) => Dimension {
            dim_value: Some(n as i64),
            dim_param: None,
        },
        None => Dimension {
            dim_value: None,
            dim_param: Some(BATCH_DIM.into()),
        },
    }];
    dim.extend(dims.iter().map(|&d| Dimension {
        dim_value: Some(d as i64),
        dim_param: None,
    }));
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: data_type::FLOAT,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
        doc_string: doc.into(),
    }
}

/// The ONNX model of `net` (built from `cfg`) as `opts` ask, with `meta` as its properties.
/// Configurations the exporter cannot express are refused with a message naming the problem.
pub fn export_model(
    net: &dyn KeypointNet,
    cfg: &ModelConfig,
    opts: &ExportOptions,
    meta: &ExportMetadata,
) -> Result<ModelProto> {
    opts.validate()?;
    cfg.validate()?;
    let desc = net.describe(cfg.input_size)?;
    let [c, h, w] = desc.output_shape();
    let stride = cfg.stride();
    if net.stride() != stride
        || c != cfg.points
        || h * stride != cfg.input_size
        || w * stride != cfg.input_size
    {
        return Err(Error::config(format!(
            "the network gives {c} maps of {h}x{w} for a {s}x{s} input, but its config \
             says {} points at stride {stride}",
            cfg.points,
            s = cfg.input_size
        )));
    }
    let mut g = graph::GraphBuilder::new(opts.opset);
    let maps = g.add_net(&desc)?;
    let s = cfg.input_size;
    let mut outputs = vec![value_info(
        &maps,
        opts.batch,
        &[c, h, w],
        "one raw map per point (the network's output: logits or heatmap values)",
    )];
    if let Some(dec) = &opts.decoder {
        let geo = decode::MapGeometry {
            points: c,
            h,
            w,
            scale: s as f32 / w as f32,
            // Every decoder's weights sum to one, so an offset on the grid is one on the points.
            offset: meta.point_offset,
        };
        decode::add_decoder(&mut g, &maps, geo, dec)?;
        outputs.push(value_info(
            decode::POINTS,
            opts.batch,
            &[c, 2],
            "decoded (x, y) per point in input pixels",
        ));
        outputs.push(value_info(
            decode::SCORES,
            opts.batch,
            &[c],
            "the largest raw value of each map",
        ));
    }
    let graph = GraphProto {
        node: g.nodes,
        name: format!("hmreg_{}", cfg.arch),
        initializer: g.initializers,
        doc_string: String::new(),
        input: vec![value_info(
            graph::INPUT_NAME,
            opts.batch,
            &[3, s, s],
            "normalised RGB images (see the metadata's mean and std)",
        )],
        output: outputs,
    };
    Ok(ModelProto {
        ir_version: ir_version(opts.opset),
        producer_name: "hmreg".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!("{} heatmap regressor exported by hmreg", cfg.arch),
        graph: Some(graph),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opts.opset,
        }],
        metadata_props: meta.props(),
    })
}

/// The model's bytes, as they go into a `.onnx` file.
pub fn to_bytes(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}
