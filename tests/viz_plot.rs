//! Line plots: data lands inside the plot area, mapping is monotone, log axes are logarithmic.

use hmreg::viz::plot::{series_color, LinePlot, Series};
use image::{Rgb, RgbImage};

fn pixels_of(img: &RgbImage, c: Rgb<u8>) -> Vec<(u32, u32)> {
    img.enumerate_pixels()
        .filter(|(_, _, p)| **p == c)
        .map(|(x, y, _)| (x, y))
        .collect()
}

fn plot(series: Vec<Series>) -> LinePlot {
    LinePlot {
        title: "Training".into(),
        x_label: "epoch".into(),
        y_label: "loss".into(),
        series,
        ..Default::default()
    }
}

#[test]
fn rising_series_rises_on_screen_inside_plot_area() {
    let pts: Vec<(f64, f64)> = (0..100)
        .map(|i| (i as f64, (i as f64 * 0.1).powi(2)))
        .collect();
    let p = plot(vec![Series::new("rising", pts.clone())]);
    let img = p.render(640, 400);
    assert_eq!(img.dimensions(), (640, 400));
    let f = p.frame(640, 400);
    assert!(f.left > 0 && f.right < 639 && f.top > 0 && f.bottom < 399);
    assert!(f.right - f.left > 400 && f.bottom - f.top > 250);

    let c = series_color(0);
    // Every data point is drawn in the series colour (the legend box may not cover the data).
    for &(x, y) in &pts {
        let (px, py) = f.to_pixel(x, y).unwrap();
        assert_eq!(
            *img.get_pixel(px.round() as u32, py.round() as u32),
            c,
            "point ({x}, {y})"
        );
        assert!(px >= f.left as f32 && px <= f.right as f32);
        assert!(py >= f.top as f32 && py <= f.bottom as f32);
    }
    // Pixel mapping is monotone: larger x further right, larger y higher up (smaller row).
    let mapped: Vec<(f32, f32)> = pts
        .iter()
        .map(|&(x, y)| f.to_pixel(x, y).unwrap())
        .collect();
    for w in mapped.windows(2) {
        assert!(w[1].0 > w[0].0);
        assert!(w[1].1 <= w[0].1);
    }
    // On screen: the series' pixels in the right half sit higher than those in the left half.
    let ink = pixels_of(&img, c);
    let mid = (f.left + f.right) as u32 / 2;
    let mean_y = |sel: &dyn Fn(u32) -> bool| {
        let v: Vec<f64> = ink
            .iter()
            .filter(|p| sel(p.0))
            .map(|p| p.1 as f64)
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(mean_y(&|x| x > mid) < mean_y(&|x| x < mid) - 50.0);
}

#[test]
fn log_axes_space_decades_evenly() {
    let pts: Vec<(f64, f64)> = (0..5).map(|k| (10f64.powi(k), 10f64.powi(-k))).collect();
    let mut p = plot(vec![Series::new("power law", pts.clone())]);
    p.log_x = true;
    p.log_y = true;
    let img = p.render(800, 500);
    let f = p.frame(800, 500);
    let px: Vec<(f32, f32)> = pts
        .iter()
        .map(|&(x, y)| f.to_pixel(x, y).unwrap())
        .collect();
    for w in px.windows(3) {
        let d1 = (w[1].0 - w[0].0, w[1].1 - w[0].1);
        let d2 = (w[2].0 - w[1].0, w[2].1 - w[1].1);
        assert!((d1.0 - d2.0).abs() < 1e-3 && (d1.1 - d2.1).abs() < 1e-3);
        assert!(d1.0 > 0.0 && d1.1 > 0.0); // rightwards and downwards (y falls)
    }
    // Tick labels are decades, the axis does not go below the data's decade.
    let labels: Vec<&str> = f.x.ticks.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(labels, ["1", "10", "100", "1000", "10000"]);
    assert!(f.y.ticks.iter().any(|(_, l)| l == "1e-4"));
    // The straight line on log-log axes is drawn: its midpoint between two points is inked.
    let c = series_color(0);
    let m = ((px[1].0 + px[2].0) / 2.0, (px[1].1 + px[2].1) / 2.0);
    let near = (-2i32..=2).any(|d| *img.get_pixel(m.0 as u32, (m.1 as i32 + d) as u32) == c);
    assert!(near);
    // Non-positive values cannot be shown on a log axis and are skipped.
    assert!(f.to_pixel(0.0, 1.0).is_none());
    assert!(f.to_pixel(1.0, -3.0).is_none());
}

#[test]
fn non_finite_points_are_skipped_and_break_the_line() {
    let pts = vec![
        (0.0, 0.0),
        (1.0, 1.0),
        (2.0, f64::NAN),
        (3.0, 3.0),
        (f64::INFINITY, 2.0),
        (4.0, 4.0),
    ];
    let p = plot(vec![Series::new("", pts)]);
    let img = p.render(400, 300);
    let f = p.frame(400, 300);
    // The range ignores the infinite point: the axis ends near 4, not at infinity.
    assert!(f.x.hi < 10.0 && f.y.hi < 10.0);
    // No line between (1,1) and (3,3): the midpoint (2,2) is not inked.
    let (mx, my) = f.to_pixel(2.0, 2.0).unwrap();
    assert_ne!(*img.get_pixel(mx as u32, my as u32), series_color(0));
}

#[test]
fn empty_and_degenerate_plots_render() {
    let empty = plot(vec![]);
    assert_eq!(empty.render(300, 200).dimensions(), (300, 200));
    let no_points = plot(vec![
        Series::new("nothing", vec![]),
        Series::new("nan", vec![(f64::NAN, 1.0)]),
    ]);
    no_points.render(300, 200);
    let single = plot(vec![Series::new("one", vec![(5.0, 5.0)])]);
    let img = single.render(300, 200);
    let f = single.frame(300, 200);
    let (x, y) = f.to_pixel(5.0, 5.0).unwrap();
    assert_eq!(*img.get_pixel(x as u32, y as u32), series_color(0)); // a marker
                                                                     // Tiny and huge pictures do not panic.
    single.render(10, 10);
    single.render(1, 1);
    let mut log = single.clone();
    log.log_x = true;
    log.log_y = true;
    log.render(500, 300);
}

#[test]
fn many_series_get_distinct_colours_and_a_legend() {
    let series: Vec<Series> = (0..6)
        .map(|k| {
            Series::new(
                format!("s{k}"),
                (0..10).map(|i| (i as f64, (i * k) as f64)).collect(),
            )
        })
        .collect();
    let p = plot(series);
    let img = p.render(800, 500);
    for k in 0..6 {
        assert!(
            !pixels_of(&img, series_color(k)).is_empty(),
            "series {k} not drawn"
        );
        for j in 0..k {
            assert_ne!(series_color(j), series_color(k));
        }
    }
}

#[test]
fn save_png_writes_a_readable_picture() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("curves/loss.png");
    let p = plot(vec![
        Series::new(
            "train",
            (1..=50).map(|i| (i as f64, 1.0 / i as f64)).collect(),
        ),
        Series::new(
            "valid",
            (1..=10)
                .map(|i| (5.0 * i as f64, 1.2 / (5 * i) as f64 + 0.01))
                .collect(),
        ),
    ]);
    p.save_png(&path).unwrap();
    let back = image::open(&path).unwrap().to_rgb8();
    assert_eq!(back.dimensions(), hmreg::viz::plot::DEFAULT_SIZE);
    if let Ok(dir) = std::env::var("HMREG_VIZ_DUMP") {
        let mut log = p.clone();
        log.log_y = true;
        log.title = "log y".into();
        p.save_png(&std::path::Path::new(&dir).join("linear.png"))
            .unwrap();
        log.save_png(&std::path::Path::new(&dir).join("log.png"))
            .unwrap();
    }
}
