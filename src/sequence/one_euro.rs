//! The One Euro filter (Casiez, Roussel and Vogel, "1 Euro Filter: A Simple Speed-based Low-pass
//! Filter for Noisy Input in Interactive Systems", CHI 2012): a first-order low-pass whose
//! cutoff rises with the signal's (itself low-passed) speed, `cutoff = min_cutoff + beta |dx|`.
//! A still signal gets the low `min_cutoff` (jitter removed), a fast one a high cutoff (little
//! lag).

/// The filter's settings, shared by every coordinate of a track.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct OneEuroSettings {
    /// Cutoff frequency at rest, in Hz: lower removes more jitter and lags more on slow moves.
    pub min_cutoff: f64,
    /// How fast the cutoff rises with speed, in Hz per (pixel per second).
    pub beta: f64,
    /// Cutoff of the speed's own low-pass, in Hz (the paper's 1 Hz).
    pub d_cutoff: f64,
}

impl Default for OneEuroSettings {
    /// Measured on landmark sequences at 30 frames/s (see the README's `hmreg track`): about
    /// 8x less frame-to-frame jitter on a still face and a few pixels of lag at 100 px/s.
    fn default() -> Self {
        OneEuroSettings {
            min_cutoff: 1.0,
            beta: 0.05,
            d_cutoff: 1.0,
        }
    }
}

impl OneEuroSettings {
    pub fn validate(&self) -> crate::Result<()> {
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        if !(ok(self.min_cutoff) && self.min_cutoff > 0.0 && ok(self.beta) && ok(self.d_cutoff))
            || self.d_cutoff <= 0.0
        {
            return Err(crate::Error::config(format!(
                "the One Euro filter needs --min-cutoff > 0 and --beta >= 0, got {} and {}",
                self.min_cutoff, self.beta
            )));
        }
        Ok(())
    }
}

/// The smoothing factor of a first-order low-pass of cutoff `cutoff` Hz sampled every `dt`
/// seconds: `1 / (1 + tau / dt)` with `tau = 1 / (2 pi cutoff)`.
fn alpha(cutoff: f64, dt: f64) -> f64 {
    let tau = 1.0 / (2.0 * std::f64::consts::PI * cutoff);
    1.0 / (1.0 + tau / dt)
}

/// The filter state of one scalar signal.
#[derive(Clone, Debug)]
pub struct OneEuro {
    settings: OneEuroSettings,
    /// The last filtered value, its low-passed speed and time; `None` before the first sample.
    last: Option<(f64, f64, f64)>,
}

impl OneEuro {
    pub fn new(settings: OneEuroSettings) -> Self {
        OneEuro {
            settings,
            last: None,
        }
    }

    /// Filters the sample `x` taken at time `t` (seconds). The first sample passes unchanged;
    /// a sample not later than the previous one is treated as taken one microsecond after it.
    pub fn filter(&mut self, t: f64, x: f64) -> f64 {
        let Some((prev, dx_prev, t_prev)) = self.last else {
            self.last = Some((x, 0.0, t));
            return x;
        };
        let dt = (t - t_prev).max(1e-6);
        let s = &self.settings;
        let dx = (x - prev) / dt;
        let a_d = alpha(s.d_cutoff, dt);
        let dx_hat = dx_prev + a_d * (dx - dx_prev);
        let cutoff = s.min_cutoff + s.beta * dx_hat.abs();
        let a = alpha(cutoff, dt);
        let x_hat = prev + a * (x - prev);
        self.last = Some((x_hat, dx_hat, t));
        x_hat
    }
}

/// One filter per coordinate of a set of points.
#[derive(Clone, Debug)]
pub struct PointsFilter {
    coords: Vec<[OneEuro; 2]>,
}

impl PointsFilter {
    pub fn new(settings: OneEuroSettings, points: usize) -> Self {
        let f = OneEuro::new(settings);
        PointsFilter {
            coords: vec![[f.clone(), f]; points],
        }
    }

    /// The smoothed points for the raw `points` at time `t`.
    pub fn filter(&mut self, t: f64, points: &[[f32; 2]]) -> Vec<[f32; 2]> {
        self.coords
            .iter_mut()
            .zip(points)
            .map(|([fx, fy], p)| {
                [
                    fx.filter(t, p[0] as f64) as f32,
                    fy.filter(t, p[1] as f64) as f32,
                ]
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_sample_passes_and_a_constant_stays() {
        let mut f = OneEuro::new(OneEuroSettings::default());
        assert_eq!(f.filter(0.0, 5.0), 5.0);
        for i in 1..20 {
            assert!((f.filter(i as f64 / 30.0, 5.0) - 5.0).abs() < 1e-12);
        }
    }

    #[test]
    fn at_rest_it_is_a_low_pass_of_min_cutoff() {
        // With beta 0 the filter is a plain exponential smoother: one step from 0 to 1.
        let s = OneEuroSettings {
            min_cutoff: 1.0,
            beta: 0.0,
            d_cutoff: 1.0,
        };
        let mut f = OneEuro::new(s);
        f.filter(0.0, 0.0);
        let y = f.filter(1.0 / 30.0, 1.0);
        let tau = 1.0 / (2.0 * std::f64::consts::PI);
        assert!((y - 1.0 / (1.0 + tau * 30.0)).abs() < 1e-12);
    }

    #[test]
    fn speed_raises_the_cutoff_so_fast_moves_lag_less() {
        // A ramp at 300 units/s: after one second the lag with beta is far below without.
        let lag = |beta: f64| {
            let mut f = OneEuro::new(OneEuroSettings {
                beta,
                ..Default::default()
            });
            let mut y = 0.0;
            for i in 0..=30 {
                let t = i as f64 / 30.0;
                y = f.filter(t, 300.0 * t);
            }
            300.0 - y
        };
        let (slow, fast) = (lag(0.0), lag(0.05));
        // Without beta the steady lag of a ramp is v * tau = 300 / (2 pi) = 48 (plus the
        // discrete step), with the cutoff at 1 + 0.05 * 300 = 16 Hz about 16 times less.
        assert!(slow > 40.0, "{slow}");
        assert!(fast < 5.0, "{fast}");
    }

    #[test]
    fn bad_settings_are_refused() {
        for (m, b) in [(0.0, 0.1), (-1.0, 0.0), (1.0, -0.1), (f64::NAN, 0.0)] {
            let s = OneEuroSettings {
                min_cutoff: m,
                beta: b,
                d_cutoff: 1.0,
            };
            assert!(s.validate().is_err(), "{m} {b}");
        }
        assert!(OneEuroSettings::default().validate().is_ok());
    }
}
