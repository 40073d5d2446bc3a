//! Annotated tracking frames: each face's crop box (yellow when the detector found it, cyan when
//! it was followed from the previous frame), its id, and its smoothed points.

use image::{Rgb, RgbImage};

use super::tracker::{Found, TrackedFace};
use crate::eval::show;
use crate::viz::draw::draw_rect;
use crate::Keypoints;

pub fn annotate(img: &RgbImage, faces: &[TrackedFace]) -> RgbImage {
    let mut pic = img.clone();
    for f in faces {
        let [x, y, w, h] = f.bbox.xywh();
        let side = w.max(h);
        let colour = match f.found {
            Found::Detected => Rgb([255, 200, 0]),
            Found::Tracked => Rgb([0, 220, 255]),
        };
        let thick = (side / 150.0).round().max(1.0) as i32;
        for t in 0..thick {
            draw_rect(
                &mut pic,
                x.round() as i32 - t,
                y.round() as i32 - t,
                w.round().max(1.0) as u32 + 2 * t as u32,
                h.round().max(1.0) as u32 + 2 * t as u32,
                colour,
            );
        }
        let scale = (side / 120.0).round().clamp(1.0, 4.0) as u32;
        let label = format!("#{}", f.id);
        let ty = y.round() as i32 - 8 * scale as i32 - thick;
        crate::viz::draw_text(
            &mut pic,
            x.round() as i32 + 1,
            ty + 1,
            &label,
            Rgb([0, 0, 0]),
            scale,
        );
        crate::viz::draw_text(&mut pic, x.round() as i32, ty, &label, colour, scale);
        show::draw_face_points(&mut pic, &Keypoints::new(f.smoothed.clone()), side, false);
    }
    pic
}
