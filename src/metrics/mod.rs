//! Landmark accuracy: NMAE, NME, failure rate, AUC, per-point errors.
//!
//! Every figure is a fraction (0.041, not 4.1 %); reports print percentages where useful.
//! A point counts only where the ground truth marks it visible; invisible points (masked by the
//! encoder, or missing) are excluded from every figure, never treated as (0, 0).
//!
//! - NMAE (the write-up's metric): mean absolute coordinate error with x divided by the frame
//!   width and y by the frame height, over all counted points and both axes. Scale-free when
//!   prediction and ground truth share a frame, so map pixels and input pixels give the same value.
//!   The default compares with the float ground truth; [`MetricAccumulator::add_target_decoded`]
//!   adds the write-up's variant (against the decoded target heatmap, which includes the target's
//!   quantization).
//! - NME: per image, mean point-to-point distance over counted points divided by the normaliser
//!   (see [`NmeNorm`]); the reported NME is the mean over images.
//! - Failure rate: fraction of images whose NME exceeds `failure_threshold` (0.10).
//! - AUC at the threshold: area under the cumulative error distribution of the image NMEs from 0
//!   to the threshold, divided by the threshold. For the empirical distribution that area is exact:
//!   `mean_i max(0, 1 - e_i / t)` (the usual step-0.0001 trapezoid sum approximates it).
//! - Per point: mean normalised distance (same normaliser as NME) of each point index.
//!
//! [`Figure`] names the scalar figures and says which way each improves.

mod figure;

pub use figure::{f64_or_nan, Direction, Figure, Figures};

use crate::{Error, Keypoints, Result};

/// What NME divides by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum NmeNorm {
    /// By the point count: iBUG-68 outer eye corners (36, 45) for 68 points, LaPa-106 (66, 79)
    /// for 106 points, the ground-truth box diagonal for any other count (e.g. the recipe's 5
    /// points, which include no eye pair).
    #[default]
    Auto,
    /// Distance between two ground-truth points (0-based indices), e.g. inter-ocular.
    Pair(usize, usize),
    /// Diagonal of the bounding box of the visible ground-truth points.
    BoxDiagonal,
}

impl NmeNorm {
    /// The concrete normaliser for a point count.
    pub fn resolve(self, points: usize) -> NmeNorm {
        match (self, points) {
            (NmeNorm::Auto, 68) => NmeNorm::Pair(36, 45),
            (NmeNorm::Auto, 106) => NmeNorm::Pair(66, 79),
            (NmeNorm::Auto, _) => NmeNorm::BoxDiagonal,
            (n, _) => n,
        }
    }

    /// The normalising length for one image's ground truth, `None` when it cannot be computed
    /// (a pair point invisible, fewer than one visible point, or a zero length).
    pub fn length(self, gt: &Keypoints) -> Option<f32> {
        let d = match self.resolve(gt.len()) {
            NmeNorm::Pair(a, b) => {
                if !(*gt.visible.get(a)? && *gt.visible.get(b)?) {
                    return None;
                }
                let (p, q) = (gt.xy[a], gt.xy[b]);
                (p[0] - q[0]).hypot(p[1] - q[1])
            }
            _ => {
                let mut lo = [f32::INFINITY; 2];
                let mut hi = [f32::NEG_INFINITY; 2];
                for (p, _) in gt.xy.iter().zip(&gt.visible).filter(|(_, &v)| v) {
                    for a in 0..2 {
                        lo[a] = lo[a].min(p[a]);
                        hi[a] = hi[a].max(p[a]);
                    }
                }
                (hi[0] - lo[0]).hypot(hi[1] - lo[1])
            }
        };
        (d.is_finite() && d > 0.0).then_some(d)
    }
}

impl std::str::FromStr for NmeNorm {
    type Err = Error;

    /// `auto`, `box` / `box-diagonal`, or a pair `36,45` / `36/45`.
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "auto" => return Ok(NmeNorm::Auto),
            "box" | "box-diagonal" | "diagonal" => return Ok(NmeNorm::BoxDiagonal),
            _ => {}
        }
        let parts: Vec<&str> = t.split([',', '/']).map(str::trim).collect();
        if let [a, b] = parts[..] {
            if let (Ok(a), Ok(b)) = (a.parse(), b.parse()) {
                return Ok(NmeNorm::Pair(a, b));
            }
        }
        Err(Error::config(format!(
            "NME normaliser `{s}`: expected auto, box-diagonal or a point pair like 36,45"
        )))
    }
}

/// Metric settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricConfig {
    pub norm: NmeNorm,
    /// NME above which an image counts as a failure; also the AUC's upper limit.
    pub failure_threshold: f32,
}

impl Default for MetricConfig {
    fn default() -> Self {
        MetricConfig {
            norm: NmeNorm::Auto,
            failure_threshold: 0.10,
        }
    }
}

/// The figures of one evaluation (fractions, not percent).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricReport {
    /// NMAE against the float ground truth.
    pub nmae: f32,
    /// NMAE against the decoded target heatmaps (the write-up's figure), when fed.
    pub nmae_vs_target: Option<f32>,
    /// Mean of the per-image NMEs.
    pub nme: f32,
    /// Failure rate at `failure_threshold`.
    pub fr: f32,
    /// AUC of the image NMEs up to `failure_threshold`, in [0, 1].
    pub auc: f32,
    /// Mean normalised error per point index (NaN for a point never visible).
    pub per_point: Vec<f32>,
    /// Images fed.
    pub count: usize,
    /// Visible points counted (for NMAE).
    pub points_counted: usize,
    /// Images left out of NME/FR/AUC because their normaliser could not be computed.
    pub nme_skipped: usize,
    /// Annotated points not scored because they were not visible in the frame (outside the
    /// model's input crop): images fed times points, less `points_counted`.
    #[serde(default)]
    pub points_unscored: usize,
    /// The normaliser used and the failure threshold.
    pub norm: NmeNorm,
    pub failure_threshold: f32,
}

impl MetricReport {
    /// One scalar figure; `None` only for `nmae_vs_target` when no target maps were fed.
    pub fn get(&self, f: Figure) -> Option<f64> {
        let v = match f {
            Figure::Nmae => self.nmae,
            Figure::NmaeVsTarget => self.nmae_vs_target?,
            Figure::Nme => self.nme,
            Figure::Fr => self.fr,
            Figure::Auc => self.auc,
        };
        Some(v as f64)
    }

    /// Every scalar figure this report has, as run histories record them.
    pub fn figures(&self) -> Figures {
        Figure::ALL
            .into_iter()
            .filter_map(|f| Some((f, self.get(f)?)))
            .collect()
    }

    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }
}

/// Fed batch by batch during evaluation or training, then [`finish`](Self::finish)ed.
/// Serialisable too, so a partial evaluation can be saved and resumed.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct MetricAccumulator {
    cfg: MetricConfig,
    points: usize,
    count: usize,
    abs_sum: f64,
    abs_n: usize,
    target_abs_sum: f64,
    target_abs_n: usize,
    image_nme: Vec<f32>,
    nme_skipped: usize,
    point_sum: Vec<f64>,
    point_n: Vec<usize>,
}

impl MetricAccumulator {
    pub fn new(cfg: MetricConfig, points: usize) -> Self {
        MetricAccumulator {
            cfg,
            points,
            count: 0,
            abs_sum: 0.0,
            abs_n: 0,
            target_abs_sum: 0.0,
            target_abs_n: 0,
            image_nme: Vec::new(),
            nme_skipped: 0,
            point_sum: vec![0.0; points],
            point_n: vec![0; points],
        }
    }

    fn check(&self, what: &str, pred: &[Keypoints], gt: &[Keypoints]) {
        assert_eq!(pred.len(), gt.len(), "metrics {what}: batch sizes differ");
        for (p, g) in pred.iter().zip(gt) {
            assert!(
                p.len() == self.points && g.len() == self.points && g.visible.len() == g.len(),
                "metrics {what}: expected {} points",
                self.points
            );
        }
    }

    /// Predictions and ground truth in the same frame (`frame_w x frame_h` pixels, e.g. the
    /// input image or the heatmap). Only `gt.visible` decides which points count.
    pub fn add(&mut self, pred: &[Keypoints], gt: &[Keypoints], frame_w: f32, frame_h: f32) {
        self.check("add", pred, gt);
        let norm = self.cfg.norm.resolve(self.points);
        for (p, g) in pred.iter().zip(gt) {
            self.count += 1;
            let d = norm.length(g);
            let (mut dist_sum, mut dist_n) = (0f64, 0usize);
            for (i, ((pp, gp), &vis)) in p.xy.iter().zip(&g.xy).zip(&g.visible).enumerate() {
                if !vis {
                    continue;
                }
                let (ex, ey) = (pp[0] - gp[0], pp[1] - gp[1]);
                self.abs_sum += (ex.abs() / frame_w) as f64 + (ey.abs() / frame_h) as f64;
                self.abs_n += 2;
                let dist = ex.hypot(ey) as f64;
                dist_sum += dist;
                dist_n += 1;
                if let Some(d) = d {
                    self.point_sum[i] += dist / d as f64;
                    self.point_n[i] += 1;
                }
            }
            match d {
                Some(d) if dist_n > 0 => self
                    .image_nme
                    .push((dist_sum / dist_n as f64 / d as f64) as f32),
                _ => self.nme_skipped += 1,
            }
        }
    }

    /// The write-up's variant: predictions against the points decoded from the target heatmaps,
    /// same frame convention as [`add`](Self::add). Points invisible in `target` are skipped.
    pub fn add_target_decoded(
        &mut self,
        pred: &[Keypoints],
        target: &[Keypoints],
        frame_w: f32,
        frame_h: f32,
    ) {
        self.check("add_target_decoded", pred, target);
        for (p, t) in pred.iter().zip(target) {
            for ((pp, tp), _) in p.xy.iter().zip(&t.xy).zip(&t.visible).filter(|(_, &v)| v) {
                self.target_abs_sum += ((pp[0] - tp[0]).abs() / frame_w) as f64
                    + ((pp[1] - tp[1]).abs() / frame_h) as f64;
                self.target_abs_n += 2;
            }
        }
    }

    /// Adds another accumulator's counts (e.g. from parallel workers).
    pub fn merge(&mut self, other: &MetricAccumulator) {
        assert_eq!(
            self.points, other.points,
            "metrics merge: point counts differ"
        );
        self.count += other.count;
        self.abs_sum += other.abs_sum;
        self.abs_n += other.abs_n;
        self.target_abs_sum += other.target_abs_sum;
        self.target_abs_n += other.target_abs_n;
        self.image_nme.extend_from_slice(&other.image_nme);
        self.nme_skipped += other.nme_skipped;
        for i in 0..self.points {
            self.point_sum[i] += other.point_sum[i];
            self.point_n[i] += other.point_n[i];
        }
    }

    /// The per-image NMEs fed so far (for CED plots).
    pub fn image_nmes(&self) -> &[f32] {
        &self.image_nme
    }

    pub fn finish(&self) -> MetricReport {
        let mean = |s: f64, n: usize| {
            if n == 0 {
                f32::NAN
            } else {
                (s / n as f64) as f32
            }
        };
        let t = self.cfg.failure_threshold;
        let k = self.image_nme.len();
        let nme = mean(self.image_nme.iter().map(|&e| e as f64).sum(), k);
        let fr = mean(self.image_nme.iter().filter(|&&e| e > t).count() as f64, k);
        let auc = mean(
            self.image_nme
                .iter()
                .map(|&e| (1.0 - e as f64 / t as f64).max(0.0))
                .sum(),
            k,
        );
        MetricReport {
            nmae: mean(self.abs_sum, self.abs_n),
            nmae_vs_target: (self.target_abs_n > 0)
                .then(|| mean(self.target_abs_sum, self.target_abs_n)),
            nme,
            fr,
            auc,
            per_point: (0..self.points)
                .map(|i| mean(self.point_sum[i], self.point_n[i]))
                .collect(),
            count: self.count,
            points_counted: self.abs_n / 2,
            points_unscored: (self.count * self.points).saturating_sub(self.abs_n / 2),
            nme_skipped: self.nme_skipped,
            norm: self.cfg.norm.resolve(self.points),
            failure_threshold: t,
        }
    }
}
