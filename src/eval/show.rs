//! Pictures of evaluation and prediction results: inputs with target and predicted points, the
//! predicted heatmaps over the input (fastai's `show_results` layout: one row per sample).

use candle_core::{DType, Device, IndexOp, Tensor};
use image::{Rgb, RgbImage};

use crate::viz::{self, draw, Grid};
use crate::{Keypoints, Result};

/// A sample kept for pictures: the input as a picture, its maps, truth and prediction.
#[derive(Clone, Debug)]
pub struct Shown {
    pub id: String,
    pub nme: Option<f32>,
    pub image: RgbImage,
    /// `L` row-major `map_w x map_h` maps.
    pub maps: Vec<f32>,
    pub map_w: usize,
    pub map_h: usize,
    pub gt: Keypoints,
    pub pred: Keypoints,
}

/// Ground truth colour.
pub const TARGET: Rgb<u8> = Rgb([40, 220, 60]);
/// Prediction colour.
pub const PREDICTED: Rgb<u8> = Rgb([240, 40, 40]);
const ERROR_LINE: Rgb<u8> = Rgb([255, 230, 0]);

/// Sample `i` of a normalised batch `(N, 3, H, W)` back to an RGB picture
/// (`pixel = 255 * (v * std + mean)`, clamped).
pub fn input_to_rgb(
    images: &Tensor,
    i: usize,
    mean: &[f32; 3],
    std: &[f32; 3],
) -> Result<RgbImage> {
    let x = images.i(i)?.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
    let (_, h, w) = x.dims3()?;
    let v: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let plane = h * w;
    Ok(RgbImage::from_fn(w as u32, h as u32, |px, py| {
        let k = py as usize * w + px as usize;
        let ch = |c: usize| {
            ((v[c * plane + k] * std[c] + mean[c]) * 255.0)
                .round()
                .clamp(0.0, 255.0) as u8
        };
        Rgb([ch(0), ch(1), ch(2)])
    }))
}

/// The maximum over all point maps at every pixel: one picture of where the model looks.
pub fn combined_map(maps: &[f32], w: usize, h: usize) -> Vec<f32> {
    let mut out = vec![f32::NEG_INFINITY; w * h];
    for m in maps.chunks_exact(w * h) {
        for (o, &v) in out.iter_mut().zip(m) {
            if v > *o {
                *o = v;
            }
        }
    }
    out
}

/// Points drawn with a point-size that follows the picture size.
fn radius_for(img: &RgbImage) -> i32 {
    (img.width().min(img.height()) as i32 / 100).clamp(1, 6)
}

/// `img` with target points (green), predicted points (red) and a yellow line from each target
/// to its prediction. Either set may be absent.
pub fn annotate(img: &RgbImage, gt: Option<&Keypoints>, pred: Option<&Keypoints>) -> RgbImage {
    let mut out = img.clone();
    let r = radius_for(img);
    if let (Some(g), Some(p)) = (gt, pred) {
        for ((a, b), &vis) in g.xy.iter().zip(&p.xy).zip(&g.visible) {
            if vis {
                draw::draw_line(&mut out, (a[0], a[1]), (b[0], b[1]), ERROR_LINE);
            }
        }
    }
    if let Some(g) = gt {
        viz::draw_points(&mut out, g, TARGET, r);
    }
    if let Some(p) = pred {
        viz::draw_points(&mut out, p, PREDICTED, r);
    }
    out
}

/// Draws one face's predicted points on a photo with markers sized by the face (`side`: its box
/// side in pixels), so that an 80-pixel face and a 1000-pixel face both stay readable; with
/// `labels`, each point's index beside it, also scaled.
pub fn draw_face_points(img: &mut RgbImage, pred: &Keypoints, side: f32, labels: bool) {
    let r = (side / 70.0).round().clamp(1.0, 10.0) as i32;
    viz::draw_points(img, pred, PREDICTED, r);
    if !labels {
        return;
    }
    let scale = (side / 250.0).round().clamp(1.0, 4.0) as u32;
    for (i, p) in pred.xy.iter().enumerate() {
        if p[0].is_finite() && p[1].is_finite() {
            let (x, y) = (p[0].round() as i32 + r + 1, p[1].round() as i32 - r - 1);
            let label = i.to_string();
            // A dark shadow keeps the label readable on light and dark backgrounds.
            viz::draw_text(img, x + 1, y + 1, &label, Rgb([0, 0, 0]), scale);
            viz::draw_text(img, x, y, &label, Rgb([255, 255, 255]), scale);
        }
    }
}

/// One row per sample: target points, predicted points (with error lines), predicted heatmaps
/// over the input. Pictures are scaled to the cell before drawing, so points stay crisp.
pub fn results_grid(samples: &[Shown], cell: u32) -> RgbImage {
    let mut grid = Grid::new(3, cell, cell);
    for s in samples {
        let nme = match s.nme {
            Some(v) => format!("NME {:.2}%", 100.0 * v),
            None => "NME n/a".to_string(),
        };
        let (w, h) = s.image.dimensions();
        let k = cell as f32 / w.max(h).max(1) as f32;
        let (cw, ch) = (
            ((w as f32 * k).round() as u32).max(1),
            ((h as f32 * k).round() as u32).max(1),
        );
        let img = image::imageops::resize(&s.image, cw, ch, image::imageops::FilterType::Triangle);
        let gt = s.gt.scaled(k, k);
        let pred = s.pred.scaled(k, k);
        grid.push(annotate(&img, Some(&gt), None), &format!("{} target", s.id));
        grid.push(
            annotate(&img, Some(&gt), Some(&pred)),
            &format!("pred {nme}"),
        );
        let heat = viz::colorize(&combined_map(&s.maps, s.map_w, s.map_h), s.map_w, s.map_h);
        let over = viz::overlay(&img, &heat, 0.6);
        grid.push(annotate(&over, None, Some(&pred)), "heatmaps");
    }
    grid.render()
}
