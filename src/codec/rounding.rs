//! Binary targets: one pixel set to 1. Randomized rounding (variant 2, Yu and Tao 2021) and the
//! deterministic floor/round encoders it is compared with.
//!
//! All take a point already on the map (`[0, w) x [0, h)`) and clamp the chosen pixel to the map:
//! randomized rounding of a point in the last column may pick column `w`, and round may too.

fn clamp(v: f32, n: usize) -> f32 {
    v.clamp(0.0, n as f32 - 1.0)
}

/// `floor(p) + 1` with probability equal to the fractional part, else `floor(p)`, per axis;
/// `ux, uy` are uniform draws in [0, 1). The expected pixel is `p` itself (before clamping).
pub fn randomized(p: [f32; 2], ux: f32, uy: f32, w: usize, h: usize) -> [f32; 2] {
    let pick = |v: f32, u: f32| {
        let n = v.floor();
        // P(u < e) = e for u uniform in [0, 1).
        if u < v - n {
            n + 1.0
        } else {
            n
        }
    };
    [clamp(pick(p[0], ux), w), clamp(pick(p[1], uy), h)]
}

/// `floor(p)`: always rounds down, a bias of -0.5 heatmap pixel on average.
pub fn floor(p: [f32; 2], w: usize, h: usize) -> [f32; 2] {
    [clamp(p[0].floor(), w), clamp(p[1].floor(), h)]
}

/// Nearest pixel (halves go up).
pub fn round(p: [f32; 2], w: usize, h: usize) -> [f32; 2] {
    [
        clamp((p[0] + 0.5).floor(), w),
        clamp((p[1] + 0.5).floor(), h),
    ]
}

/// The expected randomized-rounding map of a point (what an ideal model trained with BCE on
/// randomized-rounding targets predicts as probabilities): bilinear weights on the four pixels
/// around `p`, zeros elsewhere; overwrites `map`. Clamping folds weight from outside onto the
/// border, as the encoder does.
pub fn expected_map(p: [f32; 2], w: usize, h: usize, map: &mut [f32]) {
    map.fill(0.0);
    let (nx, ny) = (p[0].floor(), p[1].floor());
    let (ex, ey) = (p[0] - nx, p[1] - ny);
    for (dy, wy) in [(0.0, 1.0 - ey), (1.0, ey)] {
        for (dx, wx) in [(0.0, 1.0 - ex), (1.0, ex)] {
            let x = clamp(nx + dx, w) as usize;
            let y = clamp(ny + dy, h) as usize;
            map[y * w + x] += wx * wy;
        }
    }
}
