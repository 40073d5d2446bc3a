//! Text, points, heatmaps, grids and PNG files.

use hmreg::viz::{self, font, heatmap, Grid};
use hmreg::Keypoints;
use image::{Rgb, RgbImage};

const RED: Rgb<u8> = Rgb([255, 0, 0]);
const BLACK: Rgb<u8> = Rgb([0, 0, 0]);

fn inked(img: &RgbImage, color: Rgb<u8>) -> Vec<(u32, u32)> {
    img.enumerate_pixels()
        .filter(|(_, _, p)| **p == color)
        .map(|(x, y, _)| (x, y))
        .collect()
}

#[test]
fn text_ink_stays_inside_reported_width_and_height() {
    for scale in 1..=3 {
        for text in ["Hello, World!", "NME 4.1%", "|", "W", "0.001 ~ 1e-5", "a_b"] {
            let mut img = RgbImage::new(400, 100);
            let (x0, y0) = (7, 5);
            viz::draw_text(&mut img, x0, y0, text, RED, scale);
            let ink = inked(&img, RED);
            assert!(!ink.is_empty(), "{text:?} drew nothing");
            let w = viz::text_width(text, scale);
            let h = font::text_height(text, scale);
            let max_x = ink.iter().map(|p| p.0).max().unwrap();
            let min_x = ink.iter().map(|p| p.0).min().unwrap();
            let max_y = ink.iter().map(|p| p.1).max().unwrap();
            assert!(min_x >= x0 as u32);
            assert!(
                max_x < x0 as u32 + w,
                "{text:?} ink at {max_x} beyond width {w}"
            );
            assert!(max_y < y0 as u32 + h);
            // Ink reaches the last glyph column for glyphs whose right column is inked.
            if text.ends_with('W') {
                assert_eq!(max_x, x0 as u32 + w - 1);
            }
        }
    }
}

#[test]
fn text_scales_and_clips() {
    let mut one = RgbImage::new(50, 20);
    let mut two = RgbImage::new(100, 40);
    viz::draw_text(&mut one, 0, 0, "A1", RED, 1);
    viz::draw_text(&mut two, 0, 0, "A1", RED, 2);
    assert_eq!(inked(&two, RED).len(), 4 * inked(&one, RED).len());
    // Partly and wholly outside: no panic.
    let mut small = RgbImage::new(8, 8);
    viz::draw_text(&mut small, -3, -4, "Hello", RED, 2);
    viz::draw_text(&mut small, 500, 500, "Hello", RED, 2);
    viz::draw_text(&mut small, 0, 0, "caf\u{e9} \u{1F600}", RED, 1);
}

#[test]
fn distinct_characters_draw_distinct_bitmaps() {
    let render = |c: char| {
        let mut img = RgbImage::new(6, 8);
        viz::draw_text(&mut img, 0, 0, &c.to_string(), RED, 1);
        img
    };
    let all: Vec<(char, RgbImage)> = (33u8..=126)
        .map(|b| (b as char, render(b as char)))
        .collect();
    for i in 0..all.len() {
        for j in i + 1..all.len() {
            assert_ne!(
                all[i].1, all[j].1,
                "{:?} and {:?} look the same",
                all[i].0, all[j].0
            );
        }
    }
}

#[test]
fn points_land_on_their_pixels() {
    let mut img = RgbImage::new(40, 30);
    let mut kp = Keypoints::new(vec![[5.0, 6.0], [20.4, 10.6], [33.0, 25.0], [10.0, 20.0]]);
    kp.visible[3] = false;
    viz::draw_points(&mut img, &kp, RED, 2);
    assert_eq!(*img.get_pixel(5, 6), RED);
    assert_eq!(*img.get_pixel(20, 11), RED); // rounded to the nearest pixel
    assert_eq!(*img.get_pixel(33, 25), RED);
    // Radius 2: the disc reaches 2 pixels away but not 4.
    assert_eq!(*img.get_pixel(7, 6), RED);
    assert_eq!(*img.get_pixel(5, 8), RED);
    assert_ne!(*img.get_pixel(9, 6), RED);
    // The invisible point is a hollow grey ring, not the point colour.
    assert_eq!(*img.get_pixel(10, 20), BLACK);
    assert_eq!(*img.get_pixel(12, 20), viz::draw::INVISIBLE_GREY);
    assert!(inked(&img, RED).iter().all(|&(x, y)| {
        kp.xy[..3].iter().any(|p| {
            (x as f32 - p[0].round()).abs() <= 2.0 && (y as f32 - p[1].round()).abs() <= 2.0
        })
    }));
    // Out of frame and non-finite points are ignored without panicking.
    let far = Keypoints::new(vec![[-50.0, 3.0], [f32::NAN, 1.0], [1e30, 1e30]]);
    viz::draw_points(&mut img, &far, RED, 3);
}

#[test]
fn radius_zero_points_are_single_pixels() {
    let mut img = RgbImage::new(10, 10);
    viz::draw_points(&mut img, &Keypoints::new(vec![[3.0, 4.0]]), RED, 0);
    assert_eq!(inked(&img, RED), vec![(3, 4)]);
}

#[test]
fn cross_and_line_helpers() {
    let mut img = RgbImage::new(20, 20);
    viz::draw_cross(&mut img, 10.0, 10.0, 3, RED);
    for d in -3i32..=3 {
        assert_eq!(*img.get_pixel((10 + d) as u32, (10 + d) as u32), RED);
        assert_eq!(*img.get_pixel((10 + d) as u32, (10 - d) as u32), RED);
    }
    assert_eq!(inked(&img, RED).len(), 13);
    let mut img = RgbImage::new(20, 20);
    viz::draw_line(&mut img, (1.0, 15.0), (1.0, 2.0), RED);
    assert_eq!(inked(&img, RED).len(), 14);
}

#[test]
fn colorize_maps_min_and_max_to_colormap_ends() {
    let map: Vec<f32> = (0..12).map(|i| (i as f32 - 3.0) * 0.5).collect();
    let img = viz::colorize(&map, 4, 3);
    assert_eq!(img.dimensions(), (4, 3));
    assert_eq!(*img.get_pixel(0, 0), heatmap::viridis(0.0));
    assert_eq!(*img.get_pixel(3, 2), heatmap::viridis(1.0));
    // viridis ends: dark purple to yellow.
    let lo = heatmap::viridis(0.0);
    let hi = heatmap::viridis(1.0);
    assert!(lo[2] > lo[0] && lo[2] > lo[1] && (lo[0] as u32 + lo[1] as u32 + lo[2] as u32) < 200);
    assert!(hi[0] > 200 && hi[1] > 200 && hi[2] < 60);
    // Scale invariance: min-max normalisation.
    let scaled: Vec<f32> = map.iter().map(|v| v * 1000.0 + 7.0).collect();
    assert_eq!(viz::colorize(&scaled, 4, 3), img);
    // Constant and non-finite maps do not panic.
    let flat = viz::colorize(&[2.0; 6], 3, 2);
    assert!(flat.pixels().all(|p| *p == lo));
    let odd = viz::colorize(&[f32::NAN, 1.0, f32::INFINITY, 3.0], 2, 2);
    assert_eq!(*odd.get_pixel(1, 1), hi);
    assert_eq!(*odd.get_pixel(0, 0), lo);
}

#[test]
fn overlay_resizes_heat_to_base() {
    let base = RgbImage::from_pixel(32, 24, Rgb([0, 0, 0]));
    let heat = viz::colorize(&[0.0, 1.0, 1.0, 0.0], 2, 2);
    let out = viz::overlay(&base, &heat, 0.5);
    assert_eq!(out.dimensions(), (32, 24));
    // The top-right corner is the hot one.
    let hot = out.get_pixel(31, 0);
    let cold = out.get_pixel(0, 0);
    assert!(hot[0] as u32 + hot[1] as u32 > cold[0] as u32 + cold[1] as u32 + 100);
}

#[test]
fn grid_dimensions_and_placement() {
    let mut g = Grid::new(3, 40, 30);
    assert_eq!(g.render().height(), hmreg::viz::grid::PAD);
    for i in 0..4 {
        let img = RgbImage::from_pixel(80 + i * 10, 20, RED);
        g.push(img, &format!("img {i}"));
    }
    let (w, h) = g.dimensions();
    let pad = hmreg::viz::grid::PAD;
    let cap = g.caption_height();
    assert!(cap >= font::text_height("x", 1));
    assert_eq!(w, 3 * (40 + pad) + pad);
    assert_eq!(h, 2 * (30 + cap + pad) + pad);
    let out = g.render();
    assert_eq!(out.dimensions(), (w, h));
    // A 80x20 image fits into 40x30 as 40x10, at the bottom of the first cell.
    assert_eq!(*out.get_pixel(pad + 20, pad + 25), RED);
    assert_eq!(*out.get_pixel(pad + 20, pad + 20), RED);
    assert_ne!(*out.get_pixel(pad + 20, pad + 19), RED);
    // The fourth image starts the second row.
    assert_eq!(*out.get_pixel(pad + 20, pad + 30 + cap + pad + 25), RED);
    // Captions are dark ink under the images; nothing red leaks into caption bands.
    let band_y = pad + 30;
    let band: Vec<_> = (band_y..band_y + cap)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .map(|(x, y)| *out.get_pixel(x, y))
        .collect();
    assert!(band.iter().any(|p| p[0] < 100 && p[1] < 100));
    assert!(!band.contains(&RED));
}

#[test]
fn save_png_creates_dirs_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c.png");
    let img = viz::colorize(&(0..64).map(|v| v as f32).collect::<Vec<_>>(), 8, 8);
    viz::save_png(&img, &path).unwrap();
    let back = image::open(&path).unwrap().to_rgb8();
    assert_eq!(back, img);
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "temporary file left behind: {leftovers:?}"
    );
    // An impossible location: the error names the path.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let bad = blocker.join("x.png");
    let err = viz::save_png(&img, &bad).unwrap_err().to_string();
    assert!(err.contains(&bad.display().to_string()), "{err}");
}
