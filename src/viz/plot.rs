//! Line plots (training curves, error-versus-size curves) rendered to RGB images.
//!
//! Axes get "nice" ticks (steps of 1, 2 or 5 times a power of ten) on linear scales and decade
//! ticks with unlabelled minor ticks on log scales. Points that cannot be drawn (NaN, infinite, or
//! not positive on a log axis) are skipped and break the line there rather than being joined
//! across. Series get distinct colours (the tab10 palette) and markers (when they have few
//! points); the legend sits in the corner of the plot area that covers the fewest points.

use std::path::Path;

use image::{imageops, Rgb, RgbImage};
use imageproc::drawing::{draw_filled_circle_mut, draw_polygon_mut};
use imageproc::point::Point;

use super::draw;
use super::font;

#[derive(Clone, Debug, Default)]
pub struct Series {
    /// Legend entry; an empty name leaves the series out of the legend.
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Vertical error bar `(low, high)` per point (same order as `points`); empty for none.
    pub errors: Vec<(f64, f64)>,
    /// Dashed line without markers (reference levels such as a theoretical floor).
    pub dashed: bool,
    /// Palette index of the colour; `None`: the series' own position. Lets a reference line
    /// share the colour of the series it belongs to.
    pub color: Option<usize>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
            ..Series::default()
        }
    }

    fn palette_index(&self, position: usize) -> usize {
        self.color.unwrap_or(position)
    }
}

/// Length of a dash and of the gap after it, in line widths.
const DASH: f32 = 4.0;
const DASH_GAP: f32 = 3.0;

#[derive(Clone, Debug, Default)]
pub struct LinePlot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    pub series: Vec<Series>,
    /// Labelled x ticks at exactly these data values (e.g. the heatmap sizes of a grid) instead
    /// of the automatic ones; empty: automatic.
    pub x_ticks: Vec<f64>,
}

/// Size used by [`LinePlot::save_png`].
pub const DEFAULT_SIZE: (u32, u32) = (800, 500);

/// tab10: ten colours that stay distinguishable from each other.
pub const PALETTE: [Rgb<u8>; 10] = [
    Rgb([31, 119, 180]),
    Rgb([255, 127, 14]),
    Rgb([44, 160, 44]),
    Rgb([214, 39, 40]),
    Rgb([148, 103, 189]),
    Rgb([140, 86, 75]),
    Rgb([227, 119, 194]),
    Rgb([127, 127, 127]),
    Rgb([188, 189, 34]),
    Rgb([23, 190, 207]),
];

/// Colour of series `i`.
pub fn series_color(i: usize) -> Rgb<u8> {
    PALETTE[i % PALETTE.len()]
}

/// Series with at most this many drawable points get markers on every point.
const MAX_MARKED_POINTS: usize = 40;

const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const INK: Rgb<u8> = Rgb([40, 40, 40]);
const GRID: Rgb<u8> = Rgb([228, 228, 228]);
const LEGEND_BORDER: Rgb<u8> = Rgb([190, 190, 190]);

/// A range `(min, max)` of drawable values, `None` when there are none.
type Span = Option<(f64, f64)>;

/// One axis after layout: its range in transformed units (log10 of the data on a log axis).
#[derive(Clone, Debug)]
pub struct Axis {
    pub log: bool,
    /// Range covered, in transformed units.
    pub lo: f64,
    pub hi: f64,
    /// Labelled ticks: position in transformed units and label.
    pub ticks: Vec<(f64, String)>,
    /// Unlabelled ticks (log axes: 2..9 times each decade).
    pub minor: Vec<f64>,
}

impl Axis {
    /// Data value to axis units, `None` when it cannot be shown on this axis.
    pub fn transform(&self, v: f64) -> Option<f64> {
        transform(v, self.log)
    }

    /// Fraction of the axis length where transformed value `t` lies (0 at `lo`, 1 at `hi`).
    fn fraction(&self, t: f64) -> f64 {
        (t - self.lo) / (self.hi - self.lo)
    }
}

fn transform(v: f64, log: bool) -> Option<f64> {
    if !v.is_finite() {
        return None;
    }
    if log {
        (v > 0.0).then(|| v.log10())
    } else {
        Some(v)
    }
}

/// The laid-out plot: the plot area in pixels (inclusive edges) and both axes.
#[derive(Clone, Debug)]
pub struct Frame {
    pub left: i32,
    pub top: i32,
    pub right: i32,
    pub bottom: i32,
    pub x: Axis,
    pub y: Axis,
    /// Font scale used for all text.
    pub text_scale: u32,
}

impl Frame {
    /// Pixel position of a data point, `None` when it cannot be drawn (see the module notes).
    pub fn to_pixel(&self, x: f64, y: f64) -> Option<(f32, f32)> {
        let tx = self.x.transform(x)?;
        let ty = self.y.transform(y)?;
        let px = self.left as f64 + self.x.fraction(tx) * (self.right - self.left) as f64;
        let py = self.bottom as f64 - self.y.fraction(ty) * (self.bottom - self.top) as f64;
        Some((px as f32, py as f32))
    }
}

impl LinePlot {
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        LinePlot {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            ..Default::default()
        }
    }

    /// Computes axes and the plot area for a picture of `width x height`.
    pub fn frame(&self, width: u32, height: u32) -> Frame {
        let s = text_scale(width, height);
        let th = font::GLYPH_H * s; // height of one line of text
        let pad = 4 * s;
        let tick_len = 3 * s;
        let (xs, ys) = self.transformed_ranges();
        // Tick density follows the space available: a tick step of about 60 px across, 35 px up
        // (times the text scale).
        let mut x_axis = make_axis(xs, self.log_x, (width / (60 * s)).clamp(2, 12) as usize);
        if !self.x_ticks.is_empty() {
            x_axis.ticks = self
                .x_ticks
                .iter()
                .filter_map(|&v| Some((transform(v, self.log_x)?, format_plain(v))))
                .filter(|&(t, _)| t >= x_axis.lo && t <= x_axis.hi)
                .collect();
            x_axis.minor.clear();
        }
        let y_axis = make_axis(ys, self.log_y, (height / (35 * s)).clamp(2, 12) as usize);

        let y_tick_w = y_axis
            .ticks
            .iter()
            .map(|(_, l)| font::text_width(l, s))
            .max()
            .unwrap_or(0);
        let last_x_tick_w = x_axis
            .ticks
            .last()
            .map(|(_, l)| font::text_width(l, s))
            .unwrap_or(0);
        let top = pad
            + if self.title.is_empty() {
                th / 2
            } else {
                th + 2 * pad
            };
        let left =
            pad + if self.y_label.is_empty() { 0 } else { th + pad } + y_tick_w + tick_len + pad;
        let bottom_margin =
            pad + if self.x_label.is_empty() { 0 } else { th + pad } + th + tick_len + pad;
        let right_margin = pad + (last_x_tick_w / 2).max(pad);
        // Keep a usable plot area even on tiny pictures.
        let right = (width as i32 - right_margin as i32 - 1).max(left as i32 + 10);
        let bottom = (height as i32 - bottom_margin as i32 - 1).max(top as i32 + 10);
        Frame {
            left: left as i32,
            top: top as i32,
            right,
            bottom,
            x: x_axis,
            y: y_axis,
            text_scale: s,
        }
    }

    pub fn render(&self, width: u32, height: u32) -> RgbImage {
        let width = width.max(1);
        let height = height.max(1);
        let mut img = RgbImage::from_pixel(width, height, WHITE);
        let f = self.frame(width, height);
        let s = f.text_scale;
        let th = (font::GLYPH_H * s) as i32;
        let pad = 4 * s as i32;
        let tick_len = 3 * s as i32;

        // Grid lines under everything else.
        for &(t, _) in &f.x.ticks {
            let px = x_px(&f, t);
            draw::draw_line(&mut img, (px, f.top as f32), (px, f.bottom as f32), GRID);
        }
        for &(t, _) in &f.y.ticks {
            let py = y_px(&f, t);
            draw::draw_line(&mut img, (f.left as f32, py), (f.right as f32, py), GRID);
        }

        // Ticks and tick labels.
        for &t in &f.x.minor {
            let px = x_px(&f, t);
            let b = f.bottom as f32;
            draw::draw_line(&mut img, (px, b), (px, b + tick_len as f32 / 2.0), INK);
        }
        for (t, label) in &f.x.ticks {
            let px = x_px(&f, *t);
            let b = f.bottom as f32;
            draw::draw_line(&mut img, (px, b), (px, b + tick_len as f32), INK);
            let w = font::text_width(label, s) as i32;
            let lx = px.round() as i32 - w / 2;
            font::draw_text(&mut img, lx, f.bottom + tick_len + pad / 2, label, INK, s);
        }
        for &t in &f.y.minor {
            let py = y_px(&f, t);
            let l = f.left as f32;
            draw::draw_line(&mut img, (l - tick_len as f32 / 2.0, py), (l, py), INK);
        }
        for (t, label) in &f.y.ticks {
            let py = y_px(&f, *t);
            let l = f.left as f32;
            draw::draw_line(&mut img, (l - tick_len as f32, py), (l, py), INK);
            let w = font::text_width(label, s) as i32;
            let lx = f.left - tick_len - pad / 2 - w;
            font::draw_text(&mut img, lx, py.round() as i32 - th / 2, label, INK, s);
        }

        // Frame under the data: points on the axis range's edge stay visible.
        let (fw, fh) = ((f.right - f.left + 1) as u32, (f.bottom - f.top + 1) as u32);
        draw::draw_rect(&mut img, f.left, f.top, fw, fh, INK);

        self.draw_series(&mut img, &f);

        // Title, axis labels.
        let cx = (f.left + f.right) / 2;
        if !self.title.is_empty() {
            let w = font::text_width(&self.title, s) as i32;
            font::draw_text(&mut img, (cx - w / 2).max(0), pad, &self.title, INK, s);
        }
        if !self.x_label.is_empty() {
            let w = font::text_width(&self.x_label, s) as i32;
            let y = f.bottom + tick_len + pad / 2 + th + pad;
            font::draw_text(&mut img, (cx - w / 2).max(0), y, &self.x_label, INK, s);
        }
        if !self.y_label.is_empty() {
            let label = vertical_text(&self.y_label, s);
            let cy = (f.top + f.bottom) / 2;
            let y = (cy - label.height() as i32 / 2).max(0);
            imageops::overlay(&mut img, &label, pad as i64, y as i64);
        }

        self.draw_legend(&mut img, &f);
        img
    }

    /// Renders at [`DEFAULT_SIZE`] and writes a PNG (see [`super::png::save_png`]).
    pub fn save_png(&self, path: &Path) -> crate::Result<()> {
        let img = self.render(DEFAULT_SIZE.0, DEFAULT_SIZE.1);
        super::png::save_png(&img, path)
    }

    /// Ranges of the drawable points in transformed units, `None` when there are none.
    fn transformed_ranges(&self) -> (Span, Span) {
        let mut xr: Span = None;
        let mut yr: Span = None;
        for s in &self.series {
            for (k, &(x, y)) in s.points.iter().enumerate() {
                let (Some(tx), Some(ty)) = (transform(x, self.log_x), transform(y, self.log_y))
                else {
                    continue;
                };
                xr = Some(xr.map_or((tx, tx), |(a, b)| (a.min(tx), b.max(tx))));
                let (lo, hi) = s
                    .errors
                    .get(k)
                    .map(|&(lo, hi)| {
                        let t = |v| transform(v, self.log_y).unwrap_or(ty);
                        (t(lo).min(ty), t(hi).max(ty))
                    })
                    .unwrap_or((ty, ty));
                yr = Some(yr.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
            }
        }
        (xr, yr)
    }

    fn draw_series(&self, img: &mut RgbImage, f: &Frame) {
        let lw = f.text_scale as i32; // line width follows the text size
        for (position, s) in self.series.iter().enumerate() {
            let i = s.palette_index(position);
            let color = series_color(i);
            let pts: Vec<Option<(f32, f32)>> =
                s.points.iter().map(|&(x, y)| f.to_pixel(x, y)).collect();
            for w in pts.windows(2) {
                if let (Some(a), Some(b)) = (w[0], w[1]) {
                    if s.dashed {
                        draw_dashed_line(img, a, b, lw, color);
                    } else {
                        draw::draw_thick_line(img, a, b, lw, color);
                    }
                }
            }
            for (&(x, _), &(lo, hi)) in s.points.iter().zip(&s.errors) {
                if let (Some(a), Some(b)) = (f.to_pixel(x, lo), f.to_pixel(x, hi)) {
                    let cap = 3.0 * lw as f32;
                    draw::draw_thick_line(img, a, b, lw.max(1), color);
                    for end in [a, b] {
                        let (l, r) = ((end.0 - cap, end.1), (end.0 + cap, end.1));
                        draw::draw_thick_line(img, l, r, lw.max(1), color);
                    }
                }
            }
            if s.dashed {
                continue;
            }
            let drawable: Vec<(f32, f32)> = pts.iter().flatten().copied().collect();
            // Markers identify series in print and make isolated points (line breaks) visible.
            let isolated = |k: usize| {
                let prev = k > 0 && pts[k - 1].is_some();
                let next = k + 1 < pts.len() && pts[k + 1].is_some();
                !prev && !next
            };
            let mark_all = drawable.len() <= MAX_MARKED_POINTS;
            for (k, p) in pts.iter().enumerate() {
                if let Some((x, y)) = *p {
                    if mark_all || isolated(k) {
                        draw_marker(img, i, x, y, 2 * f.text_scale as i32 + 1, color);
                    }
                }
            }
        }
    }

    fn draw_legend(&self, img: &mut RgbImage, f: &Frame) {
        let entries: Vec<(usize, &str)> = self
            .series
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.name.is_empty())
            .map(|(position, s)| (position, s.name.as_str()))
            .collect();
        if entries.is_empty() {
            return;
        }
        let s = f.text_scale;
        let th = (font::GLYPH_H * s) as i32;
        let pad = 4 * s as i32;
        let swatch = 8 * s as i32;
        let row_h = th + pad;
        let name_w = entries
            .iter()
            .map(|(_, n)| font::text_width(n, s))
            .max()
            .unwrap_or(0) as i32;
        let box_w = pad + swatch + pad + name_w + pad;
        let box_h = pad + row_h * entries.len() as i32;

        // Pick the corner covering the fewest drawn points (upper right first on ties).
        let margin = 2 * pad;
        let corners = [
            (f.right - margin - box_w, f.top + margin),
            (f.left + margin, f.top + margin),
            (f.right - margin - box_w, f.bottom - margin - box_h),
            (f.left + margin, f.bottom - margin - box_h),
        ];
        let covered = |(bx, by): (i32, i32)| {
            self.series
                .iter()
                .flat_map(|s| s.points.iter())
                .filter_map(|&(x, y)| f.to_pixel(x, y))
                .filter(|&(px, py)| {
                    let (px, py) = (px as i32, py as i32);
                    px >= bx - pad
                        && px <= bx + box_w + pad
                        && py >= by - pad
                        && py <= by + box_h + pad
                })
                .count()
        };
        let (bx, by) = corners
            .iter()
            .copied()
            .min_by_key(|&c| covered(c))
            .unwrap_or(corners[0]);

        draw::fill_rect(img, bx, by, box_w as u32, box_h as u32, WHITE);
        draw::draw_rect(img, bx, by, box_w as u32, box_h as u32, LEGEND_BORDER);
        for (row, (position, name)) in entries.iter().enumerate() {
            let i = self.series[*position].palette_index(*position);
            let color = series_color(i);
            let ty = by + pad + row as i32 * row_h;
            let cy = (ty + th / 2) as f32;
            let x0 = (bx + pad) as f32;
            let x1 = (bx + pad + swatch) as f32;
            draw::draw_thick_line(img, (x0, cy), (x1, cy), s as i32, color);
            let drawable = self.series[*position]
                .points
                .iter()
                .filter(|&&(x, y)| f.to_pixel(x, y).is_some())
                .count();
            if drawable <= MAX_MARKED_POINTS && !self.series[*position].dashed {
                draw_marker(img, i, (x0 + x1) / 2.0, cy, 2 * s as i32 + 1, color);
            }
            font::draw_text(img, bx + pad + swatch + pad, ty, name, INK, s);
        }
    }
}

/// A line from `a` to `b` drawn as dashes `DASH` line widths long.
fn draw_dashed_line(img: &mut RgbImage, a: (f32, f32), b: (f32, f32), lw: i32, color: Rgb<u8>) {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len = (dx * dx + dy * dy).sqrt();
    let unit = lw.max(1) as f32;
    let period = (DASH + DASH_GAP) * unit;
    let mut t = 0.0;
    while t < len {
        let t1 = (t + DASH * unit).min(len);
        let at = |d: f32| (a.0 + dx * d / len, a.1 + dy * d / len);
        draw::draw_thick_line(img, at(t), at(t1), lw, color);
        t += period;
    }
}

/// Font scale for a picture size: 1 below 400 px on the short side, 2 above, 3 from 1000 px.
fn text_scale(width: u32, height: u32) -> u32 {
    match width.min(height) {
        0..=399 => 1,
        400..=999 => 2,
        _ => 3,
    }
}

fn x_px(f: &Frame, t: f64) -> f32 {
    (f.left as f64 + f.x.fraction(t) * (f.right - f.left) as f64) as f32
}

fn y_px(f: &Frame, t: f64) -> f32 {
    (f.bottom as f64 - f.y.fraction(t) * (f.bottom - f.top) as f64) as f32
}

/// Marker shape by series index: disc, square, triangle, diamond, x, +.
fn draw_marker(img: &mut RgbImage, series: usize, x: f32, y: f32, r: i32, color: Rgb<u8>) {
    let Some((cx, cy)) = draw::to_pixel(x, y) else {
        return;
    };
    let p = |dx: i32, dy: i32| Point::new(cx + dx, cy + dy);
    match series % 6 {
        0 => draw_filled_circle_mut(img, (cx, cy), r, color),
        1 => {
            let side = (2 * r - 1).max(1) as u32;
            draw::fill_rect(img, cx - r + 1, cy - r + 1, side, side, color)
        }
        2 => draw_polygon_mut(img, &[p(0, -r), p(r, r), p(-r, r)], color),
        3 => {
            let d = r + 1;
            draw_polygon_mut(img, &[p(0, -d), p(d, 0), p(0, d), p(-d, 0)], color)
        }
        4 => {
            for o in [-0.5f32, 0.0, 0.5] {
                draw::draw_cross(img, x + o, y, r, color);
            }
        }
        _ => {
            // A `+` with arms three pixels wide.
            let (long, short) = ((2 * r + 1) as u32, 3);
            draw::fill_rect(img, cx - r, cy - 1, long, short, color);
            draw::fill_rect(img, cx - 1, cy - r, short, long, color);
        }
    }
}

/// Text rotated a quarter turn counter-clockwise (reads bottom to top), on a transparent-looking
/// white background.
fn vertical_text(text: &str, s: u32) -> RgbImage {
    let w = font::text_width(text, s).max(1);
    let h = font::text_height(text, s);
    let mut horiz = RgbImage::from_pixel(w, h, WHITE);
    font::draw_text(&mut horiz, 0, 0, text, INK, s);
    imageops::rotate270(&horiz)
}

/// Builds an axis over the drawable range `range` (transformed units) with about `target` ticks.
fn make_axis(range: Span, log: bool, target: usize) -> Axis {
    if log {
        log_axis(range.unwrap_or((0.0, 1.0)), target)
    } else {
        linear_axis(range.unwrap_or((0.0, 1.0)), target)
    }
}

fn linear_axis((mut lo, mut hi): (f64, f64), target: usize) -> Axis {
    if hi - lo <= f64::EPSILON * hi.abs().max(lo.abs()).max(1e-300) {
        // A single value: centre it in a small range.
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        lo -= d;
        hi += d;
    }
    let step = nice_step((hi - lo) / target.max(1) as f64);
    let first = (lo / step).floor();
    let last = (hi / step).ceil();
    let decimals = decimals_for(step);
    let ticks = (first as i64..=last as i64)
        .map(|k| {
            let v = k as f64 * step;
            (v, format_number(v, decimals, step))
        })
        .collect();
    Axis {
        log: false,
        lo: first * step,
        hi: last * step,
        ticks,
        minor: Vec::new(),
    }
}

fn log_axis((lo, hi): (f64, f64), target: usize) -> Axis {
    // The data range (log10 units) with a small margin; whole decades would waste most of the
    // plot when the data spans a fraction of one.
    let (mut lo, mut hi) = (lo, hi);
    if hi - lo < 1e-9 {
        lo -= 0.5;
        hi += 0.5;
    }
    let pad = 0.04 * (hi - lo);
    lo -= pad;
    hi += pad;
    let inside = |t: f64| t >= lo - 1e-9 && t <= hi + 1e-9;
    let first = lo.ceil() as i64;
    let last = hi.floor() as i64;
    let decades = (last - first + 1).max(0) as usize;
    let target = target.max(2);
    let mut ticks = Vec::new();
    let mut minor = Vec::new();
    if decades >= 2 {
        // Far too many decades: label every k-th one (multiples of k, so 1 stays labelled).
        let every = decades.div_ceil(target).max(1) as i64;
        for k in first..=last {
            if k.rem_euclid(every) == 0 {
                ticks.push((k as f64, format_power(k)));
            } else if every <= 3 {
                minor.push(k as f64);
            }
        }
        if every == 1 {
            // Short ranges also label 2x and 5x; longer ones show them as minor ticks.
            let label_25 = hi - lo <= 2.5;
            for k in lo.floor() as i64..=last {
                for m in 2..=9 {
                    let t = k as f64 + (m as f64).log10();
                    if !inside(t) {
                        continue;
                    }
                    if label_25 && (m == 2 || m == 5) {
                        ticks.push((t, format_mantissa(m, k)));
                    } else {
                        minor.push(t);
                    }
                }
            }
        }
    } else {
        // Within about one decade: label 1x, 2x, 5x, or every integer multiple if that is too few.
        let candidates: Vec<(f64, u32, i64)> = (lo.floor() as i64..=hi.floor() as i64)
            .flat_map(|k| (1..=9).map(move |m| (k as f64 + (m as f64).log10(), m, k)))
            .filter(|&(t, _, _)| inside(t))
            .collect();
        // The coarsest set of multiples that gives at least three labels.
        let sets: [&[u32]; 3] = [&[1, 2, 5], &[1, 2, 3, 5], &[1, 2, 3, 4, 5, 6, 7, 8, 9]];
        let labelled = sets
            .into_iter()
            .find(|set| candidates.iter().filter(|c| set.contains(&c.1)).count() >= 3)
            .unwrap_or(sets[2]);
        for &(t, m, k) in &candidates {
            if !labelled.contains(&m) {
                minor.push(t);
            } else {
                ticks.push((t, format_mantissa(m, k)));
            }
        }
        if ticks.len() < 2 {
            // Less than a factor of 2 between the ends: fall back to linear ticks in log space.
            let lin = linear_axis((10f64.powf(lo), 10f64.powf(hi)), target);
            ticks = lin
                .ticks
                .into_iter()
                .filter(|(v, _)| *v > 0.0 && inside(v.log10()))
                .map(|(v, l)| (v.log10(), l))
                .collect();
            minor.clear();
        }
    }
    ticks.sort_by(|a, b| a.0.total_cmp(&b.0));
    Axis {
        log: true,
        lo,
        hi,
        ticks,
        minor,
    }
}

/// Label of `m * 10^k`: plain digits for moderate powers, `2e-5` style otherwise.
fn format_mantissa(m: u32, k: i64) -> String {
    if (-3..=4).contains(&k) {
        format_plain(m as f64 * 10f64.powi(k as i32))
    } else {
        format!("{m}e{k}")
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    let nice = if m <= 1.0 + 1e-9 {
        1.0
    } else if m <= 2.0 + 1e-9 {
        2.0
    } else if m <= 5.0 + 1e-9 {
        5.0
    } else {
        10.0
    };
    nice * p
}

fn decimals_for(step: f64) -> usize {
    (-step.log10().floor()).max(0.0) as usize
}

/// Tick label: fixed decimals for ordinary magnitudes, scientific outside them.
fn format_number(v: f64, decimals: usize, step: f64) -> String {
    // Snap rounding noise (and -0) to an exact zero so it prints like the other labels.
    let v = if v.abs() < step * 1e-6 { 0.0 } else { v };
    if v.abs() >= 1e6 || step < 1e-4 {
        let s = format!("{v:.1e}");
        return s.replace(".0e", "e");
    }
    format!("{v:.decimals$}")
}

/// Label of the decade `10^k`: plain digits for moderate powers, `1e-5` style otherwise.
fn format_power(k: i64) -> String {
    if (-3..=4).contains(&k) {
        format_plain(10f64.powi(k as i32))
    } else {
        format!("1e{k}")
    }
}

/// Shortest plain decimal for values like 0.002, 50, 10000.
fn format_plain(v: f64) -> String {
    let mut s = format!("{v:.6}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(0.13), 0.2);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(nice_step(1.0), 1.0);
    }

    #[test]
    fn linear_ticks_cover_the_data() {
        let a = linear_axis((0.013, 0.097), 6);
        assert!(a.lo <= 0.013 && a.hi >= 0.097);
        let labels: Vec<&str> = a.ticks.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["0.00", "0.02", "0.04", "0.06", "0.08", "0.10"]);
        let one = linear_axis((5.0, 5.0), 6);
        assert!(one.lo < 5.0 && one.hi > 5.0);
    }

    #[test]
    fn log_ticks_are_decades() {
        let a = log_axis((-2.5, 0.3), 6);
        assert!(a.lo < -2.5 && a.lo > -2.7 && a.hi > 0.3 && a.hi < 0.5);
        let labels: Vec<&str> = a.ticks.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["0.01", "0.1", "1"]);
        assert!(a.minor.len() >= 2 * 8);
        let b = log_axis((-20.0, 20.0), 5);
        assert!(b.ticks.len() <= 7, "{:?}", b.ticks);
        assert!(b.lo <= -20.0 && b.hi >= 20.0);
        assert!(b.ticks.iter().all(|(_, l)| l.starts_with("1e") || l == "1"));
        // Within one decade: 1x, 2x, (3x,) 5x labels.
        let c = log_axis((0.012f64.log10(), 0.09f64.log10()), 6);
        let labels: Vec<&str> = c.ticks.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["0.02", "0.03", "0.05"]);
        // A narrow range still gets at least two labels.
        let d = log_axis((3.1f64.log10(), 3.4f64.log10()), 6);
        assert!(d.ticks.len() >= 2, "{:?}", d.ticks);
    }
}
