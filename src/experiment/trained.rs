//! The rounding experiment, trained: one ordinary training run per (method, heatmap size, seed),
//! all from the same base config (model, data, augmentation, schedule, budget), then the final
//! epoch's validation figures of every cell side by side with each method's untrained
//! quantization floor.
//!
//! Every cell is a normal run directory `OUT/<method>/size<S>-seed<N>`: a finished cell
//! (`summary.json` says so) is read back, an interrupted one resumes from its last checkpoint, so
//! the grid can be completed over several sittings. A cell whose saved config differs from the
//! one the grid asks for now is an error, never silently reused.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use candle_core::Device;

use crate::codec::{Decoder, TargetEncoder};
use crate::eval::dataset::EvalSet;
use crate::eval::{evaluate, EvalOptions};
use crate::experiment::rounding::{self, Pair, QuantizationConfig};
use crate::learn::loss::LossKind;
use crate::metrics::MetricAccumulator;
use crate::models::HeadKind;
use crate::run::dir::{self, checkpoints_dir, SUMMARY_FILE};
use crate::run::history;
use crate::run::{checkpoint, load_model, ModelSource, ResolvedRun, TrainConfig};
use crate::train::progress::OutputMode;
use crate::train::trainer::{train, RunOptions};
use crate::{Error, Keypoints, Result};

/// One way of turning points into targets and maps back into points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Gaussian at the rounded centre, MSE, argmax: the common heatmap regressor.
    Vanilla,
    /// One-hot at the rounded centre, weighted BCE, argmax.
    BinaryRound,
    /// The write-up: randomized-rounding one-hot maps, weighted BCE, top-k softmax.
    WriteupRr,
    /// The paper: randomized rounding, two-channel head, per-pixel softmax cross-entropy, top-k.
    PaperRr,
    /// The modern baseline: Gaussian at the float point, MSE, DARK.
    SubpixelDark,
}

impl Method {
    pub const ALL: [Method; 5] = [
        Method::Vanilla,
        Method::BinaryRound,
        Method::WriteupRr,
        Method::PaperRr,
        Method::SubpixelDark,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::Vanilla => "vanilla",
            Method::BinaryRound => "binary-round",
            Method::WriteupRr => "writeup-rr",
            Method::PaperRr => "paper-rr",
            Method::SubpixelDark => "subpixel-dark",
        }
    }

    /// What the method trains and decodes, for tables.
    pub fn describe(self, p: &MethodParams) -> String {
        match self {
            Method::Vanilla => format!("Gaussian (sigma {}) at round(p), MSE, argmax", p.sigma),
            Method::BinaryRound => format!(
                "one-hot at round(p), BCE pos_weight {}, argmax",
                p.pos_weight
            ),
            Method::WriteupRr => format!(
                "randomized rounding, BCE pos_weight {}, top-{} softmax",
                p.pos_weight, p.k
            ),
            Method::PaperRr => format!(
                "randomized rounding, two-channel head + softmax cross-entropy, top-{} softmax",
                p.k
            ),
            Method::SubpixelDark => {
                format!("Gaussian (sigma {}) at the float point, MSE, DARK", p.sigma)
            }
        }
    }

    /// The encoder/decoder pair of the quantization part that is this method's floor: the
    /// error of a model that reproduced its targets perfectly.
    pub fn floor_pair(self) -> Pair {
        match self {
            // The argmax of a Gaussian drawn at round(p) is round(p).
            Method::Vanilla | Method::BinaryRound => Pair::RoundArgmax,
            Method::WriteupRr | Method::PaperRr => Pair::RrTopkLogOdds,
            Method::SubpixelDark => Pair::SubpixelGaussianDark,
        }
    }

    /// Sets the target, loss, head and validation decoder of `cfg` to this method's.
    pub fn apply(self, cfg: &mut TrainConfig, p: &MethodParams) {
        let sigma = p.sigma;
        let (encoder, loss, pos_weight, head, decoder) = match self {
            Method::Vanilla => (
                TargetEncoder::GaussianRound { sigma },
                LossKind::Mse,
                cfg.loss.pos_weight,
                HeadKind::Binary,
                Decoder::Argmax,
            ),
            Method::BinaryRound => (
                TargetEncoder::Round,
                LossKind::Bce,
                p.pos_weight,
                HeadKind::Binary,
                Decoder::Argmax,
            ),
            Method::WriteupRr => (
                TargetEncoder::RandomizedRounding,
                LossKind::Bce,
                p.pos_weight,
                HeadKind::Binary,
                Decoder::TopK { k: p.k },
            ),
            // The two-class softmax cross-entropy is BCE on the foreground log-odds, unweighted.
            Method::PaperRr => (
                TargetEncoder::RandomizedRounding,
                LossKind::Bce,
                1.0,
                HeadKind::TwoChannel,
                Decoder::TopK { k: p.k },
            ),
            Method::SubpixelDark => (
                TargetEncoder::Gaussian {
                    sigma,
                    subpixel: true,
                },
                LossKind::Mse,
                cfg.loss.pos_weight,
                HeadKind::Binary,
                Decoder::Dark { sigma: Some(sigma) },
            ),
        };
        cfg.target.encoder = encoder;
        cfg.loss.kind = loss;
        cfg.loss.pos_weight = pos_weight;
        cfg.model.head = head;
        cfg.metrics.decoder = decoder;
        cfg.metrics.vs_target = true;
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Method {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Method::ALL.iter().map(|m| m.name()).collect();
                Error::config(format!(
                    "unknown method `{s}` (expected one of {})",
                    names.join(", ")
                ))
            })
    }
}

/// The methods' shared parameters.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MethodParams {
    /// Gaussian standard deviation in heatmap pixels (vanilla and sub-pixel; DARK smooths with it).
    pub sigma: f32,
    /// BCE weight of the positive pixel for the one-channel binary heads.
    pub pos_weight: f64,
    /// k of the top-k softmax decoder.
    pub k: usize,
}

impl Default for MethodParams {
    fn default() -> Self {
        MethodParams {
            sigma: 1.5,
            pos_weight: 100.0,
            k: 9,
        }
    }
}

/// The grid: which cells exist.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GridConfig {
    /// Square heatmap sizes (input size / heatmap stride).
    pub sizes: Vec<usize>,
    pub methods: Vec<Method>,
    pub seeds: Vec<u64>,
    #[serde(flatten)]
    pub params: MethodParams,
}

impl Default for GridConfig {
    fn default() -> Self {
        GridConfig {
            sizes: vec![32, 16, 8],
            methods: Method::ALL.to_vec(),
            seeds: vec![0, 1],
            params: MethodParams::default(),
        }
    }
}

/// The `[rounding]` table of an experiment config: the grid; everything else is the base
/// training config every cell starts from.
pub const GRID_TABLE: &str = "rounding";

/// The resolved experiment config written next to a grid's results ([`config_toml`]).
pub const EXPERIMENT_TOML: &str = "experiment.toml";

/// Reads an experiment config: the base training config and its `[rounding]` grid table
/// (defaults when absent). Errors name the file and line as for training configs.
pub fn load_config(path: &Path) -> Result<(TrainConfig, GridConfig)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| Error::file(path, format!("not valid TOML: {e}")))?;
    let grid = match table.get(GRID_TABLE) {
        Some(v) => v
            .clone()
            .try_into::<GridConfig>()
            .map_err(|e| Error::file(path, format!("[{GRID_TABLE}]: {}", e.message())))?,
        None => GridConfig::default(),
    };
    let base = TrainConfig::parse(&without_table(&text, GRID_TABLE), path)?;
    Ok((base, grid))
}

/// The base config and the grid table as one TOML file that [`load_config`] reads back (the
/// resolved experiment a grid's results were made with).
pub fn config_toml(base: &TrainConfig, grid: &GridConfig) -> Result<String> {
    let grid_toml = toml::to_string_pretty(grid)?;
    Ok(format!("{}\n[{GRID_TABLE}]\n{grid_toml}", base.to_toml()?))
}

/// `text` with the lines of table `[name]` blanked (kept as empty lines, so the training config's
/// parser reports the same line numbers).
fn without_table(text: &str, name: &str) -> String {
    let header = format!("[{name}]");
    let mut inside = false;
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            inside = t.split('#').next().map(str::trim) == Some(header.as_str());
        }
        if !inside {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// One (method, heatmap size, seed) of the grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell {
    pub method: Method,
    pub size: usize,
    pub seed: u64,
}

impl Cell {
    pub fn dir(&self, out: &Path) -> PathBuf {
        out.join(self.method.name())
            .join(format!("size{}-seed{}", self.size, self.seed))
    }

    /// The cell's training config: the base with the method, heatmap stride and seed set.
    pub fn config(&self, base: &TrainConfig, params: &MethodParams) -> Result<TrainConfig> {
        let input = base.pipeline.input_size;
        if self.size == 0 || !input.is_multiple_of(self.size) {
            return Err(Error::config(format!(
                "heatmap size {} does not divide the input size {input}",
                self.size
            )));
        }
        let mut cfg = base.clone();
        cfg.model.heatmap_stride = input / self.size;
        // The cell asks for its own map grid: a stride recorded in the base file no longer binds.
        cfg.written.stride = None;
        cfg.seed = self.seed;
        self.method.apply(&mut cfg, params);
        cfg.check()?;
        Ok(cfg)
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}x{} seed {}",
            self.method, self.size, self.size, self.seed
        )
    }
}

impl GridConfig {
    pub fn validate(&self, base: &TrainConfig) -> Result<()> {
        self.cell_configs(base).map(|_| ())
    }

    /// Every cell with its training config (an error for an empty grid or a cell that cannot
    /// be configured).
    pub fn cell_configs(&self, base: &TrainConfig) -> Result<Vec<(Cell, TrainConfig)>> {
        if self.sizes.is_empty() || self.methods.is_empty() || self.seeds.is_empty() {
            return Err(Error::config(
                "the grid needs at least one size, one method and one seed",
            ));
        }
        self.cells()
            .into_iter()
            .map(|c| Ok((c, c.config(base, &self.params)?)))
            .collect()
    }

    /// Every cell, seed-major: all methods and sizes of the first seed come first, so a grid cut
    /// short still compares every method once.
    pub fn cells(&self) -> Vec<Cell> {
        let mut cells = Vec::new();
        for &seed in &self.seeds {
            for &size in &self.sizes {
                for &method in &self.methods {
                    cells.push(Cell { method, size, seed });
                }
            }
        }
        cells
    }
}

/// The final-epoch validation figures of one trained cell.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CellResult {
    pub method: Method,
    pub size: usize,
    pub stride: usize,
    pub seed: u64,
    pub epochs: usize,
    /// NME against the float ground truth (fraction), outer-eye-corner normalised for 68 points.
    pub nme: f64,
    /// The write-up's NMAE against the float ground truth.
    pub nmae: f64,
    /// The write-up's NMAE against the argmax-decoded target maps (what its notebook reports).
    pub nmae_vs_target: Option<f64>,
    pub fr: f64,
    pub auc: f64,
    /// NME of the same network decoded with each of [`cross_decoders`] (decoder name -> NME).
    pub nme_by_decoder: BTreeMap<String, f64>,
    /// Training wall time of the cell, summed over sittings.
    pub seconds: f64,
    pub run_dir: PathBuf,
}

/// The decoders every cell is also decoded with, whatever it was trained for: what the decoder
/// alone contributes shows when the same network is read out differently.
pub fn cross_decoders(p: &MethodParams) -> Vec<Decoder> {
    vec![
        Decoder::Argmax,
        Decoder::TopK { k: p.k },
        Decoder::Dark {
            sigma: Some(p.sigma),
        },
    ]
}

/// Where a cell stands before the grid runs it.
enum CellState {
    Finished,
    /// Checkpoints exist: continue them.
    Interrupted,
    Fresh,
}

/// Called before each cell with (cell index, cell count, cell, what happens, grid ETA seconds).
pub type GridProgress<'a> = dyn Fn(usize, usize, &Cell, &str, Option<f64>) + 'a;

/// Runs (or completes) the grid and returns every cell's result, in grid order.
pub fn run_grid(
    base: &TrainConfig,
    grid: &GridConfig,
    out: &Path,
    output: OutputMode,
    progress: &GridProgress,
) -> Result<Vec<CellResult>> {
    let cells = grid.cell_configs(base)?;
    let mut results = Vec::with_capacity(cells.len());
    // States first: the ETA counts only the cells that still need training.
    let states = cells
        .iter()
        .map(|(c, cfg)| cell_state(cfg, &c.dir(out)))
        .collect::<Result<Vec<_>>>()?;
    let mut to_train = states
        .iter()
        .filter(|s| !matches!(s, CellState::Finished))
        .count();
    let mut trained_seconds = 0.0;
    let mut trained = 0usize;
    let n = cells.len();
    for ((i, (cell, cfg)), state) in cells.into_iter().enumerate().zip(states) {
        let run_dir = cell.dir(out);
        let eta = (trained > 0).then(|| trained_seconds / trained as f64 * to_train as f64);
        let resume = match state {
            CellState::Finished => {
                progress(i, n, &cell, "finished before, skipped", eta);
                results.push(evaluate_cell(&cell, &run_dir, &grid.params)?);
                continue;
            }
            CellState::Interrupted => {
                progress(i, n, &cell, "resuming", eta);
                true
            }
            CellState::Fresh => {
                progress(i, n, &cell, "training", eta);
                false
            }
        };
        let started = Instant::now();
        let opts = RunOptions {
            run_dir: run_dir.clone(),
            resume,
            output,
            ..Default::default()
        };
        let summary = train(cfg, &opts)?;
        trained_seconds += started.elapsed().as_secs_f64();
        trained += 1;
        to_train -= 1;
        if !summary.finished {
            return Err(Error::file(
                &run_dir,
                "the cell's run stopped before its last epoch",
            ));
        }
        results.push(evaluate_cell(&cell, &run_dir, &grid.params)?);
    }
    Ok(results)
}

fn cell_state(cfg: &TrainConfig, run_dir: &Path) -> Result<CellState> {
    if run_dir.join(SUMMARY_FILE).is_file() && is_finished(run_dir)? {
        let saved = dir::read_config(run_dir)?;
        let mut want = cfg.clone();
        want.absolutize_paths();
        // The point count comes from the data when the run starts: the saved run records it.
        let want = want.resolve(Some(saved.model.points))?;
        if !dir::configs_match(saved, &want)? {
            return Err(Error::file(
                run_dir.join(dir::CONFIG_FILE),
                "this cell was trained with another config than the grid asks for now (epochs, \
                 data, model, ...): choose another --out, or delete the cell's directory to \
                 train it again",
            ));
        }
        return Ok(CellState::Finished);
    }
    if checkpoint::latest(&checkpoints_dir(run_dir))?.is_some() {
        return Ok(CellState::Interrupted);
    }
    Ok(CellState::Fresh)
}

fn is_finished(run_dir: &Path) -> Result<bool> {
    let path = run_dir.join(SUMMARY_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::file(&path, format!("cannot read: {e}")))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::file(&path, format!("not valid JSON: {e}")))?;
    Ok(v.get("finished").and_then(|f| f.as_bool()) == Some(true))
}

/// The cell's figures: its last checkpoint evaluated on the validation split against the float
/// ground truth, with its own decoder and with each of [`cross_decoders`]. Evaluated afresh on
/// every invocation (not read from the training log), so the figures always come from the
/// current decoders and metrics.
fn evaluate_cell(cell: &Cell, run_dir: &Path, params: &MethodParams) -> Result<CellResult> {
    let ckpt_root = checkpoints_dir(run_dir);
    let last = checkpoint::latest(&ckpt_root)?
        .ok_or_else(|| Error::file(&ckpt_root, "no complete checkpoint to evaluate"))?;
    let saved = dir::read_config(run_dir)?;
    let device = saved.device.open()?;
    let source = ModelSource::Checkpoint {
        checkpoint: last,
        config: run_dir.join(dir::CONFIG_FILE),
    };
    let loaded = load_model(&source, &device)?;
    let cfg = &loaded.cfg;
    let set = validation_set(cfg, &device)?;
    // One forward pass: the evaluation decodes with the cell's own decoder, its hook reads the
    // same output out with each cross-decoder.
    let size = cfg.pipeline.input_size as f32;
    let codecs = cross_decoders(params)
        .into_iter()
        .map(|d| cfg.codec_with(d))
        .collect::<Result<Vec<_>>>()?;
    let mut cross: Vec<Option<MetricAccumulator>> = vec![None; codecs.len()];
    let opts = EvalOptions::for_run(cfg, cfg.codec().clone());
    let own = evaluate(
        loaded.model.as_ref(),
        set.batches(true),
        &opts,
        &mut |batch, output| {
            let points = batch.points.first().map_or(0, Keypoints::len);
            for (codec, acc) in codecs.iter().zip(cross.iter_mut()) {
                let pred = codec.decode(output)?.points;
                acc.get_or_insert_with(|| {
                    MetricAccumulator::new(cfg.metrics.accuracy.clone(), points)
                })
                .add(&pred, &batch.points, size, size);
            }
            Ok(())
        },
    )?
    .report;
    let nme_by_decoder = codecs
        .iter()
        .zip(&cross)
        .filter_map(|(c, acc)| Some((c.decoder().to_string(), acc.as_ref()?.finish().nme as f64)))
        .collect();
    let records = history::read_jsonl(&run_dir.join(history::METRICS_JSONL))?;
    Ok(CellResult {
        method: cell.method,
        size: cell.size,
        stride: cfg.model.stride(),
        seed: cell.seed,
        epochs: records.last().map_or(0, |r| r.epoch),
        nme: own.nme as f64,
        nmae: own.nmae as f64,
        nmae_vs_target: own.nmae_vs_target.map(f64::from),
        fr: own.fr as f64,
        auc: own.auc as f64,
        nme_by_decoder,
        seconds: records.iter().map(|r| r.seconds).sum(),
        run_dir: run_dir.to_path_buf(),
    })
}

/// A cell's validation split prepared as its run validates it.
fn validation_set(cfg: &ResolvedRun, device: &Device) -> Result<EvalSet> {
    EvalSet::open(
        cfg,
        &cfg.data.root,
        &cfg.data.val_split,
        cfg.data.origin,
        cfg.data.val_limit,
        None,
        device,
    )
}

/// The untrained floor of one method at one size: the quantization error of its encoder/decoder
/// pair on the validation points.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Floor {
    pub method: Method,
    pub size: usize,
    pub nme: f64,
    pub nmae: f64,
}

/// Every method's floor at every size, on the validation points as the cells see them (the
/// input frame of the validation pipeline).
/// Reads the validation points through the first cell's resolved config, so call it once that
/// cell has trained.
pub fn floors(base: &TrainConfig, grid: &GridConfig, out: &Path) -> Result<Vec<Floor>> {
    let cfg = dir::read_config(&grid.cells()[0].dir(out))?.resolve(None)?;
    let mut points: Vec<Keypoints> = Vec::new();
    for batch in validation_set(&cfg, &Device::Cpu)?.batches(false) {
        points.extend(batch?.points);
    }
    let qcfg = QuantizationConfig {
        input: cfg.pipeline.input_size,
        sizes: grid.sizes.clone(),
        draws: 10,
        sigma: grid.params.sigma,
        k: grid.params.k,
        seed: base.seed,
        metric: cfg.metrics.accuracy.clone(),
    };
    let report = rounding::quantization(&points, &qcfg, &|| {})?;
    let mut out = Vec::new();
    for &size in &grid.sizes {
        for &method in &grid.methods {
            let row = report
                .rows
                .iter()
                .find(|r| r.size == size && r.pair == method.floor_pair())
                .ok_or_else(|| Error::Msg(format!("no quantization row for {method} {size}")))?;
            out.push(Floor {
                method,
                size,
                nme: row.nme as f64,
                nmae: row.nmae as f64,
            });
        }
    }
    Ok(out)
}
