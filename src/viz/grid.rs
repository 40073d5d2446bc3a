//! A grid of captioned images (like fastai's `show_batch` / `show_results`).
//!
//! Layout: `cols` columns; each cell is `cell_w x cell_h` for the image plus a caption band under
//! it, with [`PAD`] pixels around and between cells. Images are scaled to fit their cell keeping
//! the aspect ratio, centred horizontally and aligned to the bottom of the cell (next to the
//! caption). Captions are drawn with the built-in font, may contain `'\n'`,
//! and are cut with `..` when wider than the cell.

use image::{imageops, Rgb, RgbImage};

use super::font;

/// Pixels around and between cells.
pub const PAD: u32 = 4;
/// Background colour.
pub const BACKGROUND: Rgb<u8> = Rgb([255, 255, 255]);
const CAPTION_COLOR: Rgb<u8> = Rgb([20, 20, 20]);

pub struct Grid {
    cols: usize,
    cell_w: u32,
    cell_h: u32,
    items: Vec<(RgbImage, String)>,
}

impl Grid {
    /// `cols` of 0 is treated as 1; cell sizes of 0 as 1.
    pub fn new(cols: usize, cell_w: u32, cell_h: u32) -> Self {
        Grid {
            cols: cols.max(1),
            cell_w: cell_w.max(1),
            cell_h: cell_h.max(1),
            items: Vec::new(),
        }
    }

    pub fn push(&mut self, img: RgbImage, caption: &str) {
        self.items.push((img, caption.to_string()));
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Font scale of captions: larger cells get larger text.
    pub fn caption_scale(&self) -> u32 {
        if self.cell_w >= 240 {
            2
        } else {
            1
        }
    }

    /// Height of the caption band: enough for the caption with the most lines (0 without captions).
    pub fn caption_height(&self) -> u32 {
        let lines = self
            .items
            .iter()
            .filter(|(_, c)| !c.is_empty())
            .map(|(_, c)| c.split('\n').count())
            .max();
        match lines {
            None => 0,
            Some(n) => {
                let s = self.caption_scale();
                font::text_height(&"\n".repeat(n - 1), s) + 2 * s
            }
        }
    }

    /// Rows used by the pushed images (0 when empty).
    pub fn rows(&self) -> usize {
        self.items.len().div_ceil(self.cols)
    }

    /// Size of the rendered picture:
    /// `cols * (cell_w + PAD) + PAD` by `rows * (cell_h + caption_height + PAD) + PAD`.
    pub fn dimensions(&self) -> (u32, u32) {
        let w = self.cols as u32 * (self.cell_w + PAD) + PAD;
        let h = self.rows() as u32 * (self.cell_h + self.caption_height() + PAD) + PAD;
        (w, h)
    }

    pub fn render(&self) -> RgbImage {
        let (w, h) = self.dimensions();
        let mut out = RgbImage::from_pixel(w, h, BACKGROUND);
        let cap_h = self.caption_height();
        let scale = self.caption_scale();
        for (i, (img, caption)) in self.items.iter().enumerate() {
            let (col, row) = ((i % self.cols) as u32, (i / self.cols) as u32);
            let x0 = PAD + col * (self.cell_w + PAD);
            let y0 = PAD + row * (self.cell_h + cap_h + PAD);
            if img.width() > 0 && img.height() > 0 {
                let fit = fit_into(img, self.cell_w, self.cell_h);
                let dx = (self.cell_w - fit.width()) / 2;
                // Bottom-aligned so that the caption sits right under the picture.
                let dy = self.cell_h - fit.height();
                imageops::replace(&mut out, &fit, (x0 + dx) as i64, (y0 + dy) as i64);
            }
            for (li, line) in caption.split('\n').enumerate() {
                let line = truncate_to_width(line, self.cell_w, scale);
                let tw = font::text_width(&line, scale);
                let tx = x0 + (self.cell_w.saturating_sub(tw)) / 2;
                let ty = y0 + self.cell_h + scale + li as u32 * font::LINE_ADVANCE * scale;
                font::draw_text(&mut out, tx as i32, ty as i32, &line, CAPTION_COLOR, scale);
            }
        }
        out
    }
}

/// Scales `img` to the largest size inside `w x h` with the same aspect ratio.
fn fit_into(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    let (iw, ih) = img.dimensions();
    let s = (w as f64 / iw as f64).min(h as f64 / ih as f64);
    let nw = ((iw as f64 * s).round() as u32).clamp(1, w);
    let nh = ((ih as f64 * s).round() as u32).clamp(1, h);
    if (nw, nh) == (iw, ih) {
        return img.clone();
    }
    // Triangle (bilinear) filtering averages over the source footprint, fine for thumbnails.
    imageops::resize(img, nw, nh, imageops::FilterType::Triangle)
}

/// Cuts `text` (ending it with `..`) so that it fits in `max_w` pixels at `scale`.
fn truncate_to_width(text: &str, max_w: u32, scale: u32) -> String {
    if font::text_width(text, scale) <= max_w {
        return text.to_string();
    }
    let mut out: String = text.chars().collect();
    while !out.is_empty() && font::text_width(&format!("{out}.."), scale) > max_w {
        out.pop();
    }
    if out.is_empty() {
        String::new()
    } else {
        format!("{out}..")
    }
}
