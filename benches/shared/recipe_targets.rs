//! The two recipe targets the pipeline benchmarks measure, named as
//! benches/pipeline_reference.py prints them (the speed bench matches rows by these names).

use hmreg::codec::TargetEncoder;
use hmreg::data::TargetConfig;

pub fn recipe_targets() -> [(&'static str, TargetConfig); 2] {
    [
        (
            "gaussian sigma 10, 256x256 maps",
            TargetConfig {
                encoder: TargetEncoder::Gaussian {
                    sigma: 10.0,
                    subpixel: false,
                },
                stride: 1,
            },
        ),
        (
            "randomized rounding, 64x64 maps",
            TargetConfig {
                encoder: TargetEncoder::RandomizedRounding,
                stride: 4,
            },
        ),
    ]
}
