//! `hmreg summary`: a model's layers with output shapes and parameter counts (like fastai's
//! `Learner.summary`), ending with the totals.

use clap::Args;

use crate::models::{build, Arch, LayerInfo, ModelConfig, ParamStore};
use crate::stdout;

/// Model summary.
#[derive(Args, Debug)]
pub struct SummaryArgs {
    /// Architecture.
    #[arg(long, default_value = "hrnet18", value_parser = super::args::arch_parser())]
    pub arch: Arch,
    /// Number of landmarks (output maps).
    #[arg(long, default_value_t = 5)]
    pub points: usize,
    /// Square input size in pixels (a multiple of 32).
    #[arg(long = "input", default_value_t = 256)]
    pub input_size: usize,
    /// Input pixels per heatmap pixel (default: the architecture's own, 1 or 4).
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub heatmap_stride: usize,
    /// Channel multiplier (1 = published widths).
    #[arg(long, default_value_t = 1.0)]
    pub width: f32,
    /// Count as in fine_tune's first phase: encoder frozen except its BatchNorm layers.
    #[arg(long)]
    pub frozen: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The figures of a summary.
#[derive(Debug, serde::Serialize)]
pub struct Summary {
    pub arch: Arch,
    pub points: usize,
    pub input_size: usize,
    pub width: f32,
    pub frozen: bool,
    pub layers: Vec<LayerInfo>,
    pub total_params: usize,
    pub trainable_params: usize,
    pub non_trainable_params: usize,
    /// Trainable while the encoder is frozen (fastai's first `fine_tune` phase).
    pub frozen_trainable_params: usize,
}

/// Builds the model's parameters (no forward pass: shapes come from the construction).
pub fn summarize(cfg: &ModelConfig, frozen: bool) -> crate::Result<Summary> {
    let mut store = ParamStore::new(&candle_core::Device::Cpu, 0);
    let net = build(cfg, &mut store)?;
    let total = store.num_parameters();
    let frozen_trainable = store.num_trainable_values(true);
    let trainable = if frozen { frozen_trainable } else { total };
    Ok(Summary {
        arch: cfg.arch,
        points: cfg.points,
        input_size: cfg.input_size,
        width: cfg.width,
        frozen,
        layers: net.layers(),
        total_params: total,
        trainable_params: trainable,
        non_trainable_params: total - trainable,
        frozen_trainable_params: frozen_trainable,
    })
}

/// Thousands separators, as fastai prints counts.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// The table.
pub fn render(s: &Summary) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} ({} points, input 3 x {} x {}, width {})",
        s.arch, s.points, s.input_size, s.input_size, s.width
    );
    let name_w = s
        .layers
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let rule = "=".repeat(name_w + 66);
    let _ = writeln!(o, "{rule}");
    let _ = writeln!(
        o,
        "{:<name_w$}  {:<18}  {:<18}  {:>12}  Trainable",
        "Layer", "Type", "Output Shape", "Param #"
    );
    let _ = writeln!(o, "{rule}");
    for l in &s.layers {
        let shape = format!("{} x {} x {}", l.output[0], l.output[1], l.output[2]);
        let trainable = if l.params == 0 {
            ""
        } else if !s.frozen || l.trainable_frozen == l.params {
            "True"
        } else if l.trainable_frozen == 0 {
            "False"
        } else {
            "Partly"
        };
        let params = if l.params == 0 {
            String::new()
        } else {
            thousands(l.params)
        };
        let _ = writeln!(
            o,
            "{:<name_w$}  {:<18}  {:<18}  {:>12}  {}",
            l.name, l.kind, shape, params, trainable
        );
    }
    let _ = writeln!(o, "{rule}");
    if s.arch == Arch::UnetResnet18 && !s.frozen {
        let _ = writeln!(
            o,
            "With the encoder frozen: {} trainable, {} non-trainable (--frozen)",
            thousands(s.frozen_trainable_params),
            thousands(s.total_params - s.frozen_trainable_params)
        );
    }
    let _ = writeln!(o, "Total params: {}", thousands(s.total_params));
    let _ = writeln!(o, "Trainable params: {}", thousands(s.trainable_params));
    let _ = writeln!(
        o,
        "Non-trainable params: {}",
        thousands(s.non_trainable_params)
    );
    o
}

pub fn run(args: SummaryArgs) -> crate::Result<()> {
    let cfg = ModelConfig {
        arch: args.arch,
        points: args.points,
        input_size: args.input_size,
        width: args.width,
        heatmap_stride: args.heatmap_stride,
        head: crate::models::HeadKind::Binary,
        ..Default::default()
    };
    cfg.validate()?;
    let s = summarize(&cfg, args.frozen)?;
    if args.json {
        let j = serde_json::to_string_pretty(&s)?;
        stdout::line(j)?;
    } else {
        stdout::text(render(&s))?;
    }
    Ok(())
}
