//! A photo series aligned onto one face: each photo's landmarks are fitted onto the reference
//! shape by a least-squares similarity ([`super::similarity`]) on a chosen set of points, and
//! the photo is warped into the common frame (bilinear, the border's pixels repeated outwards),
//! so the face stays put from photo to photo, as in an "Alignimation".

use image::RgbImage;

use super::similarity::{fit, Similarity};
use crate::data::transforms::warp::{warp_rgb_chw, PadMode};
use crate::viz::Grid;
use crate::{Error, Result};

/// Which points the similarity is fitted on.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointSet {
    /// Every point of the model.
    All,
    /// The iBUG-68 eyes (36-47) and nose (27-35): rigid parts, so that an open mouth or a
    /// turned jaw does not tilt the fit.
    EyesNose,
}

impl PointSet {
    /// The indices of the points used, for a model of `n` points.
    pub fn indices(&self, n: usize) -> Result<Vec<usize>> {
        match self {
            PointSet::All => Ok((0..n).collect()),
            PointSet::EyesNose if n == 68 => Ok((27..48).collect()),
            PointSet::EyesNose => Err(Error::config(format!(
                "--points eyes-nose needs the iBUG 68-point layout; the model has {n} points"
            ))),
        }
    }
}

/// The iBUG-68 eye centres (means of points 36-41 and 42-47), where aligned photos are compared.
pub fn eye_centres(points: &[[f32; 2]]) -> Option<[[f32; 2]; 2]> {
    if points.len() != 68 {
        return None;
    }
    crate::predict::eye_centres(points)
}

fn select(points: &[[f32; 2]], idx: &[usize]) -> Vec<[f32; 2]> {
    idx.iter().map(|&i| points[i]).collect()
}

/// The least-squares similarity of `points` onto `target` on the points `idx`.
pub fn fit_on(points: &[[f32; 2]], target: &[[f32; 2]], idx: &[usize]) -> Result<Similarity> {
    fit(&select(points, idx), &select(target, idx))
        .ok_or_else(|| Error::Msg("the landmarks are degenerate (all at one place)".into()))
}

/// The mean shape of `shapes`, in the frame of the first: each shape is fitted onto the first
/// (on `idx`), then the fitted shapes are averaged; a second round fits them onto that mean
/// (one step of generalised Procrustes analysis, enough for faces of one person).
pub fn mean_shape(shapes: &[Vec<[f32; 2]>], idx: &[usize]) -> Result<Vec<[f32; 2]>> {
    let first = shapes
        .first()
        .ok_or_else(|| Error::Msg("no shapes to average".into()))?;
    let mut target = first.clone();
    for _ in 0..2 {
        let mut sum = vec![[0f64; 2]; first.len()];
        for s in shapes {
            let t = fit_on(s, &target, idx)?;
            for (acc, &p) in sum.iter_mut().zip(s) {
                let q = t.apply(p);
                acc[0] += q[0] as f64;
                acc[1] += q[1] as f64;
            }
        }
        let n = shapes.len() as f64;
        let mean: Vec<[f32; 2]> = sum
            .iter()
            .map(|a| [(a[0] / n) as f32, (a[1] / n) as f32])
            .collect();
        // Keep the mean where the first shape is (the average can shrink slightly).
        let back = fit_on(&mean, first, idx)?;
        target = mean.iter().map(|&p| back.apply(p)).collect();
    }
    Ok(target)
}

/// The similarity that places a reference shape in a `w x h` output: the box of its points
/// `idx` centred, its longer side half the output's shorter side.
pub fn frame_for_size(reference: &[[f32; 2]], idx: &[usize], w: u32, h: u32) -> Similarity {
    let pts = select(reference, idx);
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for p in &pts {
        x0 = x0.min(p[0]);
        y0 = y0.min(p[1]);
        x1 = x1.max(p[0]);
        y1 = y1.max(p[1]);
    }
    let side = (x1 - x0).max(y1 - y0).max(1.0) as f64;
    // All points span more than the eyes and nose: the eyes-nose box gets a smaller share.
    let share = if pts.len() == reference.len() {
        0.5
    } else {
        0.3
    };
    let k = share * w.min(h) as f64 / side;
    let (cx, cy) = (((x0 + x1) / 2.0) as f64, ((y0 + y1) / 2.0) as f64);
    Similarity::new(k, 0.0, w as f64 / 2.0 - k * cx, h as f64 / 2.0 - k * cy)
}

/// `img` warped by `to_out` (photo pixels -> output pixels) into a `w x h` picture: bilinear,
/// the photo's border pixels repeated past its sides.
pub fn warp_photo(img: &RgbImage, to_out: &Similarity, w: u32, h: u32) -> Result<RgbImage> {
    let back = to_out
        .inverse()
        .ok_or_else(|| Error::Msg("the alignment transform has zero scale".into()))?;
    let (wu, hu) = (w as usize, h as usize);
    let mut chw = vec![0f32; 3 * wu * hu];
    warp_rgb_chw(img, &back.matrix(), wu, hu, PadMode::Border, &mut chw);
    let plane = wu * hu;
    Ok(RgbImage::from_fn(w, h, |x, y| {
        let o = y as usize * wu + x as usize;
        let v = |c: usize| (chw[c * plane + o] * 255.0).round().clamp(0.0, 255.0) as u8;
        image::Rgb([v(0), v(1), v(2)])
    }))
}

/// A contact sheet of the aligned frames: a near-square grid of cells at most 200 pixels wide,
/// each captioned.
pub fn contact_sheet(frames: &[(RgbImage, String)]) -> RgbImage {
    let n = frames.len().max(1);
    let cols = (n as f64).sqrt().ceil() as usize;
    let (w, h) = frames.first().map_or((1, 1), |(f, _)| f.dimensions());
    let cell_w = w.min(200);
    let cell_h = ((h as f64 * cell_w as f64 / w.max(1) as f64).round() as u32).max(1);
    let mut grid = Grid::new(cols, cell_w, cell_h);
    for (f, caption) in frames {
        let small =
            image::imageops::resize(f, cell_w, cell_h, image::imageops::FilterType::Triangle);
        grid.push(small, caption);
    }
    grid.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warped_photo_moves_its_pixels_by_the_transform() {
        // A bright dot at (20, 10) goes to where the transform sends it.
        let mut img = RgbImage::from_pixel(40, 30, image::Rgb([0, 0, 0]));
        img.put_pixel(20, 10, image::Rgb([255, 255, 255]));
        let t = Similarity::new(2.0, std::f64::consts::FRAC_PI_2, 50.0, 5.0);
        let out = warp_photo(&img, &t, 80, 80).unwrap();
        let [x, y] = t.apply([20.0, 10.0]);
        assert!(out.get_pixel(x.round() as u32, y.round() as u32).0[0] > 200);
        // Border fill: far outside the photo the corner pixel (black) repeats, no hole.
        assert_eq!(out.get_pixel(79, 79).0, [0, 0, 0]);
    }

    #[test]
    fn the_mean_shape_of_moved_copies_is_the_shape() {
        let base: Vec<[f32; 2]> = (0..68)
            .map(|i| {
                let a = i as f32 * 0.37;
                [
                    50.0 + 20.0 * a.cos() + i as f32 * 0.3,
                    40.0 + 15.0 * a.sin(),
                ]
            })
            .collect();
        let moves = [
            Similarity::new(1.0, 0.0, 0.0, 0.0),
            Similarity::new(1.5, 0.3, 10.0, -4.0),
            Similarity::new(0.8, -0.2, -7.0, 12.0),
        ];
        let shapes: Vec<Vec<[f32; 2]>> = moves
            .iter()
            .map(|m| base.iter().map(|&p| m.apply(p)).collect())
            .collect();
        let idx = PointSet::All.indices(68).unwrap();
        let mean = mean_shape(&shapes, &idx).unwrap();
        for (m, b) in mean.iter().zip(&base) {
            assert!((m[0] - b[0]).abs() < 1e-2 && (m[1] - b[1]).abs() < 1e-2);
        }
        assert_eq!(PointSet::EyesNose.indices(68).unwrap().len(), 21);
        assert!(PointSet::EyesNose.indices(98).is_err());
    }
}
