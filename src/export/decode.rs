//! hmreg's decoders as ONNX nodes, so that one call of a runtime gives landmarks: `points`
//! `(N, L, 2)` in input pixels and `scores` `(N, L)`, the same numbers as
//! [`crate::codec::Codec::decode`] (positions scaled by input size / map size, no half-pixel
//! shift; the score is the map's largest raw value, as for every hmreg decoder) plus the run's
//! point offset, as `hmreg predict` reports them without the flip test.
//!
//! Positions come from a constant table `grid` of `(x, y)` per flat map index, already in input
//! pixels: argmax gathers one row of it, top-k gathers k rows and weights them with the softmax
//! of the k values, soft-argmax multiplies the softmax of the whole map with it. No integer
//! division, and no ReduceSum (whose axes moved from an attribute to an input at opset 13).

use super::graph::{attr_int, attr_ints, GraphBuilder};
use crate::codec::Decoder;
use crate::{Error, Result};

/// Output names of the decoded variant.
pub const POINTS: &str = "points";
pub const SCORES: &str = "scores";

/// The maps' geometry as the decoder nodes need it.
#[derive(Clone, Copy, Debug)]
pub struct MapGeometry {
    pub points: usize,
    pub h: usize,
    pub w: usize,
    /// Input pixels per map pixel.
    pub scale: f32,
    /// Input pixels added to every decoded point (the run's calibration).
    pub offset: [f32; 2],
}

/// Whether `dec` can be written as nodes; the error says why not and what to do instead.
pub fn check_decoder(dec: &Decoder) -> Result<()> {
    dec.validate()?;
    match dec {
        Decoder::Argmax | Decoder::TopK { .. } | Decoder::SoftArgmax { .. } => Ok(()),
        Decoder::Dark { .. } | Decoder::QuarterOffset => Err(Error::config(format!(
            "the `{dec}` decoder has no in-graph form (it refines the argmax with \
             neighbouring values); export with --decode argmax, topk[:k] or softargmax[:t], or \
             with --decode none and decode the heatmaps outside the runtime"
        ))),
    }
}

/// Adds the decoder's nodes after `maps` and names their outputs [`POINTS`] and [`SCORES`].
pub fn add_decoder(
    g: &mut GraphBuilder,
    maps: &str,
    geo: MapGeometry,
    dec: &Decoder,
) -> Result<()> {
    check_decoder(dec)?;
    let (p, hw) = (geo.points as i64, geo.h * geo.w);
    let flat_shape = g.ints("shape", &[-1, p, hw as i64]);
    let flat = g.node("Reshape", &[maps, &flat_shape], vec![]);
    let scores = g.node(
        "ReduceMax",
        &[&flat],
        vec![attr_ints("axes", &[2]), attr_int("keepdims", 0)],
    );
    g.rename(&scores, SCORES)?;
    let grid: Vec<f32> = (0..hw)
        .flat_map(|i| {
            [
                (i % geo.w) as f32 * geo.scale + geo.offset[0],
                (i / geo.w) as f32 * geo.scale + geo.offset[1],
            ]
        })
        .collect();
    let grid = g.floats("grid", &[hw, 2], &grid);
    let points = match dec {
        Decoder::Argmax => {
            // ArgMax returns the first maximum, as hmreg's argmax does.
            let idx = g.node(
                "ArgMax",
                &[&flat],
                vec![attr_int("axis", 2), attr_int("keepdims", 0)],
            );
            g.node("Gather", &[&grid, &idx], vec![attr_int("axis", 0)])
        }
        Decoder::TopK { k } => {
            // hmreg takes all values of a map smaller than k; TopK would fail.
            let k = (*k).min(hw) as i64;
            let k_in = g.ints("k", &[k]);
            let top = g.node_n("TopK", &[&flat, &k_in], 2, vec![attr_int("axis", -1)]);
            let weights = g.node("Softmax", &[&top[0]], vec![attr_int("axis", -1)]);
            let coords = g.node("Gather", &[&grid, &top[1]], vec![attr_int("axis", 0)]);
            let row_shape = g.ints("shape", &[-1, p, 1, k]);
            let weights = g.node("Reshape", &[&weights, &row_shape], vec![]);
            let mean = g.node("MatMul", &[&weights, &coords], vec![]);
            let out_shape = g.ints("shape", &[-1, p, 2]);
            g.node("Reshape", &[&mean, &out_shape], vec![])
        }
        Decoder::SoftArgmax { temperature } => {
            let logits = if *temperature == 1.0 {
                flat.clone()
            } else {
                let inv = g.floats("inv_temperature", &[], &[1.0 / temperature]);
                g.node("Mul", &[&flat, &inv], vec![])
            };
            // Softmax on the last axis reads the same in opset 11 (2-D coercion at the last
            // axis) and 13+ (per axis).
            let weights = g.node("Softmax", &[&logits], vec![attr_int("axis", -1)]);
            g.node("MatMul", &[&weights, &grid], vec![])
        }
        Decoder::Dark { .. } | Decoder::QuarterOffset => return check_decoder(dec),
    };
    g.rename(&points, POINTS)?;
    Ok(())
}
