//! Published NME figures for the known landmark layouts, printed beside `hmreg eval`'s own so a
//! user sees where a model stands, and how comparable the numbers are: each names the benchmark
//! subset, the normaliser and the training it needs.

use crate::metrics::NmeNorm;

/// One published result.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Published {
    /// The landmark layout it applies to.
    pub layout: &'static str,
    pub model: &'static str,
    /// Benchmark and subset.
    pub benchmark: &'static str,
    /// NME in percent.
    pub nme_percent: f32,
    /// Normaliser, input and training conditions.
    pub protocol: &'static str,
    pub source: &'static str,
}

const HRNET_FACIAL: &str = "HRNet-Facial (Sun et al. 2019), README";
const RR_PAPER: &str = "randomized-rounding paper's released models (Yu and Tao 2021), README";

/// Every figure hmreg knows.
pub const FIGURES: &[Published] = &[
    Published {
        layout: "iBUG-68",
        model: "HRNetV2-W18",
        benchmark: "300-W common subset",
        nme_percent: 2.91,
        protocol: "outer eye corners (36, 45); ImageNet-pretrained; 256 input",
        source: HRNET_FACIAL,
    },
    Published {
        layout: "iBUG-68",
        model: "HRNetV2-W18",
        benchmark: "300-W full set",
        nme_percent: 3.34,
        protocol: "outer eye corners (36, 45); ImageNet-pretrained; 256 input",
        source: HRNET_FACIAL,
    },
    Published {
        layout: "iBUG-68",
        model: "HRNet-W18, randomized rounding",
        benchmark: "300-W (subset not stated), ground-truth box",
        nme_percent: 3.48,
        protocol: "outer eye corners (36, 45); ImageNet-pretrained; 256 input",
        source: RR_PAPER,
    },
    Published {
        layout: "iBUG-68",
        model: "HRNet-W18, randomized rounding",
        benchmark: "300-W (subset not stated), dataset box",
        nme_percent: 3.62,
        protocol: "outer eye corners (36, 45); ImageNet-pretrained; 256 input",
        source: RR_PAPER,
    },
    Published {
        layout: "WFLW-98",
        model: "HRNet-W18, randomized rounding",
        benchmark: "WFLW test, ground-truth box",
        nme_percent: 3.81,
        protocol: "outer eye corners (60, 72); ImageNet-pretrained; 256 input",
        source: RR_PAPER,
    },
    Published {
        layout: "LaPa-106",
        model: "HRNet-W18, randomized rounding",
        benchmark: "LaPa test",
        nme_percent: 1.40,
        protocol: "outer eye corners (66, 79); ImageNet-pretrained; 256 input",
        source: RR_PAPER,
    },
];

/// The layout of `points` landmarks per file and its outer-eye-corner pair.
pub fn layout(points: usize) -> Option<(&'static str, [usize; 2])> {
    match points {
        68 => Some(("iBUG-68", [36, 45])),
        98 => Some(("WFLW-98", [60, 72])),
        106 => Some(("LaPa-106", [66, 79])),
        _ => None,
    }
}

/// The published figures comparable in kind with an evaluation of a model that predicts all
/// `points` landmarks of a known layout in file order, normalised by `norm`: none for a
/// selection of points, an unknown layout, or another normaliser.
pub fn comparable(points_in_files: usize, all_points: bool, norm: NmeNorm) -> Vec<Published> {
    let Some((name, corners)) = layout(points_in_files) else {
        return Vec::new();
    };
    let normalised_alike = matches!(
        norm.resolve(points_in_files),
        NmeNorm::Pair(a, b) if [a, b] == corners || [b, a] == corners
    );
    if !(all_points && normalised_alike) {
        return Vec::new();
    }
    FIGURES
        .iter()
        .filter(|f| f.layout == name)
        .cloned()
        .collect()
}
