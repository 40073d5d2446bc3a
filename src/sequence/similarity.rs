//! The least-squares similarity transform between two point sets (Umeyama, "Least-squares
//! estimation of transformation parameters between two point patterns", PAMI 1991): the scale,
//! rotation and translation minimising the summed squared distance from the mapped source points
//! to the destination points. In 2-D, writing points as complex numbers, Umeyama's SVD solution
//! without reflection reduces to `s e^{i theta} = sum(conj(p_c) q_c) / sum(|p_c|^2)` over the
//! centred points, which is what [`fit`] computes.

use crate::data::transforms::warp::Mat3;

/// `(x, y) -> (a x - b y + tx, b x + a y + ty)`: scale `hypot(a, b)`, rotation `atan2(b, a)`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Similarity {
    pub a: f64,
    pub b: f64,
    pub tx: f64,
    pub ty: f64,
}

impl Similarity {
    /// Scale `scale`, rotation `angle` (radians, counter-clockwise in x-right y-down pixels is
    /// clockwise on screen), then translation.
    pub fn new(scale: f64, angle: f64, tx: f64, ty: f64) -> Self {
        Similarity {
            a: scale * angle.cos(),
            b: scale * angle.sin(),
            tx,
            ty,
        }
    }

    pub fn scale(&self) -> f64 {
        self.a.hypot(self.b)
    }

    pub fn angle(&self) -> f64 {
        self.b.atan2(self.a)
    }

    pub fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        let (x, y) = (p[0] as f64, p[1] as f64);
        [
            (self.a * x - self.b * y + self.tx) as f32,
            (self.b * x + self.a * y + self.ty) as f32,
        ]
    }

    /// The inverse transform (`None` for a zero scale).
    pub fn inverse(&self) -> Option<Similarity> {
        let n = self.a * self.a + self.b * self.b;
        if n <= 1e-300 || !n.is_finite() {
            return None;
        }
        let (a, b) = (self.a / n, -self.b / n);
        Some(Similarity {
            a,
            b,
            tx: -(a * self.tx - b * self.ty),
            ty: -(b * self.tx + a * self.ty),
        })
    }

    /// `self` after `first`: `p -> self(first(p))`.
    pub fn compose(&self, first: &Similarity) -> Similarity {
        Similarity {
            a: self.a * first.a - self.b * first.b,
            b: self.b * first.a + self.a * first.b,
            tx: self.a * first.tx - self.b * first.ty + self.tx,
            ty: self.b * first.tx + self.a * first.ty + self.ty,
        }
    }

    pub fn matrix(&self) -> Mat3 {
        Mat3::affine(self.a, -self.b, self.tx, self.b, self.a, self.ty)
    }
}

/// The similarity mapping `src` onto `dst` in the least-squares sense. Pairs where either point
/// is not finite are left out; `None` when fewer than two pairs remain or the source points all
/// coincide.
pub fn fit(src: &[[f32; 2]], dst: &[[f32; 2]]) -> Option<Similarity> {
    let pairs: Vec<([f64; 2], [f64; 2])> = src
        .iter()
        .zip(dst)
        .filter(|(p, q)| p.iter().chain(q.iter()).all(|v| v.is_finite()))
        .map(|(p, q)| (p.map(f64::from), q.map(f64::from)))
        .collect();
    if pairs.len() < 2 {
        return None;
    }
    let n = pairs.len() as f64;
    let mean = |k: usize| -> [f64; 2] {
        let s = pairs.iter().fold([0.0, 0.0], |acc, pq| {
            let v = if k == 0 { pq.0 } else { pq.1 };
            [acc[0] + v[0], acc[1] + v[1]]
        });
        [s[0] / n, s[1] / n]
    };
    let (mp, mq) = (mean(0), mean(1));
    let (mut re, mut im, mut var) = (0.0, 0.0, 0.0);
    for (p, q) in &pairs {
        let (px, py) = (p[0] - mp[0], p[1] - mp[1]);
        let (qx, qy) = (q[0] - mq[0], q[1] - mq[1]);
        // conj(p) * q
        re += px * qx + py * qy;
        im += px * qy - py * qx;
        var += px * px + py * py;
    }
    if var <= 1e-12 * n {
        return None;
    }
    let (a, b) = (re / var, im / var);
    Some(Similarity {
        a,
        b,
        tx: mq[0] - (a * mp[0] - b * mp[1]),
        ty: mq[1] - (b * mp[0] + a * mp[1]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn shape(rng: &mut impl Rng, n: usize) -> Vec<[f32; 2]> {
        (0..n)
            .map(|_| [rng.random_range(-50.0..150.0), rng.random_range(0.0..120.0)])
            .collect()
    }

    #[test]
    fn known_transforms_are_recovered() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for _ in 0..50 {
            let t = Similarity::new(
                rng.random_range(0.3..3.0),
                rng.random_range(-3.1..3.1),
                rng.random_range(-200.0..200.0),
                rng.random_range(-200.0..200.0),
            );
            let src = shape(&mut rng, 12);
            let dst: Vec<[f32; 2]> = src.iter().map(|&p| t.apply(p)).collect();
            let f = fit(&src, &dst).unwrap();
            assert!(
                (f.scale() - t.scale()).abs() < 1e-4 * t.scale(),
                "{f:?} {t:?}"
            );
            let da = (f.angle() - t.angle() + std::f64::consts::PI)
                .rem_euclid(2.0 * std::f64::consts::PI)
                - std::f64::consts::PI;
            assert!(da.abs() < 1e-4, "{f:?} {t:?}");
            assert!((f.tx - t.tx).abs() < 1e-2 && (f.ty - t.ty).abs() < 1e-2);
        }
    }

    #[test]
    fn noise_leaves_the_least_squares_fit_close() {
        // Least squares: the fit's residual is at most that of the true transform.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let t = Similarity::new(1.3, 0.4, 10.0, -5.0);
        let src = shape(&mut rng, 40);
        let dst: Vec<[f32; 2]> = src
            .iter()
            .map(|&p| {
                let q = t.apply(p);
                [
                    q[0] + rng.random_range(-1.0..1.0),
                    q[1] + rng.random_range(-1.0..1.0),
                ]
            })
            .collect();
        let f = fit(&src, &dst).unwrap();
        let sse = |s: &Similarity| -> f64 {
            src.iter()
                .zip(&dst)
                .map(|(&p, q)| {
                    let m = s.apply(p);
                    ((m[0] - q[0]) as f64).powi(2) + ((m[1] - q[1]) as f64).powi(2)
                })
                .sum()
        };
        assert!(sse(&f) <= sse(&t) + 1e-6);
        assert!((f.scale() - 1.3).abs() < 0.02 && (f.angle() - 0.4).abs() < 0.02);
    }

    #[test]
    fn inverse_compose_and_matrix_agree() {
        let t = Similarity::new(0.7, -1.2, 30.0, 4.0);
        let u = Similarity::new(2.0, 0.3, -3.0, 9.0);
        let p = [12.5f32, -7.0];
        let back = t.inverse().unwrap().apply(t.apply(p));
        assert!((back[0] - p[0]).abs() < 1e-4 && (back[1] - p[1]).abs() < 1e-4);
        let c = u.compose(&t).apply(p);
        let two = u.apply(t.apply(p));
        assert!((c[0] - two[0]).abs() < 1e-3 && (c[1] - two[1]).abs() < 1e-3);
        let m = t.matrix().apply(p).unwrap();
        let d = t.apply(p);
        assert!((m[0] - d[0]).abs() < 1e-3 && (m[1] - d[1]).abs() < 1e-3);
    }

    #[test]
    fn degenerate_inputs_give_none() {
        assert!(fit(&[[1.0, 1.0]], &[[2.0, 2.0]]).is_none());
        assert!(fit(&[[1.0, 1.0]; 5], &[[0.0, 3.0]; 5]).is_none());
        assert!(fit(&[[0.0, 0.0], [f32::NAN, 1.0]], &[[0.0, 0.0], [1.0, 1.0]]).is_none());
    }
}
