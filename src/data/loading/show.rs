//! A picture of what the model is fed (fastai `show_batch`): each transformed input with its
//! points, next to its target heatmaps, for checking that points sit on the landmarks after
//! augmentation and that targets sit on the points.

use image::{imageops, Rgb, RgbImage};

use crate::data::loading::loader::{Item, Loader};
use crate::data::transforms::normalize::denormalize_to_rgb;
use crate::viz::{self, Grid};
use crate::{Keypoints, Result};

/// The input picture of an item (normalisation undone) with its points, one colour per point
/// index (so identities can be checked across flips); invisible points as hollow grey circles.
pub fn item_picture(item: &Item, normalize: &crate::data::NormalizeConfig) -> RgbImage {
    let s = (item.image.len() / 3).isqrt();
    let mut img = denormalize_to_rgb(&item.image, s, s, normalize);
    let radius = if s >= 192 { 2 } else { 1 };
    for (i, (&p, &v)) in item
        .points
        .xy
        .iter()
        .zip(item.points.visible.iter())
        .enumerate()
    {
        let one = Keypoints {
            xy: vec![p],
            visible: vec![v],
        };
        viz::draw_points(&mut img, &one, point_colour(i, item.points.len()), radius);
    }
    img
}

/// Red for a single set of many points (iBUG-68 drawn in one colour reads best); distinct plot
/// colours per index for small selections.
fn point_colour(i: usize, n: usize) -> Rgb<u8> {
    if n > 12 {
        Rgb([255, 40, 40])
    } else {
        viz::plot::series_color(i)
    }
}

/// The pixelwise maximum of an item's target maps, colorised, scaled to the input size and laid
/// over the input picture so the peaks can be compared with the face.
pub fn target_picture(loader: &Loader, item: &Item, input: &RgbImage) -> RgbImage {
    let m = loader.map_size();
    let mut max = vec![0f32; m * m];
    for map in item.target.chunks_exact(m * m) {
        for (a, &b) in max.iter_mut().zip(map) {
            *a = a.max(b);
        }
    }
    let heat = viz::colorize(&max, m, m);
    // Nearest neighbour keeps single-pixel binary targets visible as whole map pixels.
    let heat = imageops::resize(
        &heat,
        input.width(),
        input.height(),
        imageops::FilterType::Nearest,
    );
    let grey = imageops::colorops::grayscale(input);
    let base = RgbImage::from_fn(input.width(), input.height(), |x, y| {
        let v = grey.get_pixel(x, y)[0];
        Rgb([v, v, v])
    });
    viz::overlay(&base, &heat, 0.65)
}

/// A grid of `indices` as they come out of the loader in `epoch`: picture and targets side by
/// side, two samples per row.
pub fn show_grid(
    loader: &Loader,
    indices: &[usize],
    epoch: usize,
    normalize: &crate::data::NormalizeConfig,
) -> Result<RgbImage> {
    let s = loader.input_size() as u32;
    let mut grid = Grid::new(4, s, s);
    for &i in indices {
        let item = loader.item(i, epoch)?;
        let pic = item_picture(&item, normalize);
        let heat = target_picture(loader, &item, &pic);
        let stem = &loader.samples()[i].stem;
        let hidden = item.points.visible.iter().filter(|v| !**v).count();
        let caption = if hidden > 0 {
            format!("{stem} ({hidden} pts out)")
        } else {
            stem.clone()
        };
        grid.push(pic, &caption);
        let flip = if item.plan.flipped { ", flipped" } else { "" };
        grid.push(heat, &format!("max of {} maps{flip}", item.mask.len()));
    }
    Ok(grid.render())
}
