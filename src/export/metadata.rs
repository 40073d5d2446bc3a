//! The metadata properties of an exported file: what a deployer needs to feed the graph and read
//! its outputs without hmreg (input size, normalisation, stride, points, flips, decoder), and
//! where the file came from (hmreg version, run).

use super::onnx_proto::StringStringEntryProto;
use crate::models::{HeadKind, ModelConfig};

/// What the exported file says about its model.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportMetadata {
    /// The square input size in pixels.
    pub input_size: usize,
    /// Per RGB channel: the graph expects `(pixel / 255 - mean) / std`.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Input pixels per heatmap pixel.
    pub heatmap_stride: usize,
    pub points: usize,
    /// The landmark layout, e.g. `iBUG-68`, `LaPa-106 points [30, 40]`, `custom`.
    pub layout: String,
    /// Mirror pairs of the model's points (0-based), for a flip test; `None` when unknown.
    pub flip_pairs: Option<Vec<(usize, usize)>>,
    /// The in-graph decoder (`topk:9`), `None` for heatmaps only.
    pub decoder: Option<String>,
    /// Input pixels `[x, y]` added to decoded points (the run's `metrics.point_offset`): the
    /// graph's `points` include it; whoever decodes the heatmaps adds it.
    pub point_offset: [f32; 2],
    pub arch: String,
    pub head: String,
    /// The run directory or checkpoint the weights came from.
    pub run: String,
}

/// The metadata keys, as written.
pub mod keys {
    pub const INPUT_SIZE: &str = "input_size";
    pub const INPUT_FORMAT: &str = "input_format";
    pub const MEAN: &str = "mean";
    pub const STD: &str = "std";
    pub const HEATMAP_STRIDE: &str = "heatmap_stride";
    pub const POINTS: &str = "points";
    pub const LAYOUT: &str = "layout";
    pub const FLIP_PAIRS: &str = "flip_pairs";
    pub const DECODER: &str = "decoder";
    pub const POINT_OFFSET: &str = "point_offset";
    pub const ARCH: &str = "arch";
    pub const HEAD: &str = "head";
    pub const HMREG_VERSION: &str = "hmreg_version";
    pub const RUN: &str = "run";
}

/// `[a, b, c]` with each value as Rust prints an f32 (the shortest text that reads back equal).
fn list(v: &[f32]) -> String {
    let items: Vec<String> = v.iter().map(|x| format!("{x}")).collect();
    format!("[{}]", items.join(", "))
}

/// The left/right pairs of a mirror permutation (each once, the lower index first); points that
/// mirror onto themselves (the chin, the nose tip) are in no pair.
pub fn pairs_of_permutation(perm: &[usize]) -> Vec<(usize, usize)> {
    perm.iter()
        .enumerate()
        .filter(|&(i, &j)| i < j)
        .map(|(i, &j)| (i, j))
        .collect()
}

/// How a head is described in the metadata.
pub fn head_name(head: HeadKind) -> String {
    match head {
        HeadKind::Binary => "binary".into(),
        HeadKind::TwoChannel => "two-channel (exported as fg - bg)".into(),
    }
}

impl ExportMetadata {
    /// The metadata of a network built from `cfg` outside a run (fresh or test weights), its
    /// inputs normalised with `mean` and `std`: a custom layout, no flip pairs, no in-graph
    /// decoder, no point offset.
    pub fn for_network(cfg: &ModelConfig, mean: [f32; 3], std: [f32; 3], run: &str) -> Self {
        ExportMetadata {
            input_size: cfg.input_size,
            mean,
            std,
            heatmap_stride: cfg.stride(),
            points: cfg.points,
            layout: "custom".into(),
            flip_pairs: None,
            decoder: None,
            point_offset: [0.0; 2],
            arch: cfg.arch.to_string(),
            head: head_name(cfg.head),
            run: run.into(),
        }
    }

    /// The properties in a fixed order; lists are JSON.
    pub fn props(&self) -> Vec<StringStringEntryProto> {
        let s = self.input_size;
        let mut kv: Vec<(&str, String)> = vec![
            (keys::INPUT_SIZE, format!("{s}")),
            (
                keys::INPUT_FORMAT,
                format!("float32 NCHW, RGB, {s}x{s}, each channel (value / 255 - mean) / std"),
            ),
            (keys::MEAN, list(&self.mean)),
            (keys::STD, list(&self.std)),
            (keys::HEATMAP_STRIDE, format!("{}", self.heatmap_stride)),
            (keys::POINTS, format!("{}", self.points)),
            (keys::LAYOUT, self.layout.clone()),
        ];
        if let Some(pairs) = &self.flip_pairs {
            let items: Vec<String> = pairs.iter().map(|(a, b)| format!("[{a}, {b}]")).collect();
            kv.push((keys::FLIP_PAIRS, format!("[{}]", items.join(", "))));
        }
        kv.push((
            keys::DECODER,
            self.decoder.clone().unwrap_or_else(|| "none".into()),
        ));
        kv.push((keys::POINT_OFFSET, list(&self.point_offset)));
        kv.push((keys::ARCH, self.arch.clone()));
        kv.push((keys::HEAD, self.head.clone()));
        kv.push((keys::HMREG_VERSION, env!("CARGO_PKG_VERSION").to_string()));
        kv.push((keys::RUN, self.run.clone()));
        kv.into_iter()
            .map(|(k, v)| StringStringEntryProto {
                key: k.to_string(),
                value: v,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_skip_self_mirrors_and_repeat_no_pair() {
        assert_eq!(pairs_of_permutation(&[2, 1, 0, 4, 3]), vec![(0, 2), (3, 4)]);
    }
}
