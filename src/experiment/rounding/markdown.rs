//! Markdown tables of the two parts' reports.

use super::{MonteCarloReport, Pair, QuantRow, QuantizationReport};

/// Markdown rendering of [`MonteCarloReport`].
pub fn montecarlo_markdown(r: &MonteCarloReport) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "Point ({}, {}) in a {}x{} (w x h) image on a {}x{} (w x h) map: exact ({:.4}, {:.4}) \
         (write-up: ({}, {})). Seed {}.\n\n",
        r.point[0],
        r.point[1],
        r.image_w,
        r.image_h,
        r.map_w,
        r.map_h,
        r.exact[0],
        r.exact[1],
        r.writeup_exact[0],
        r.writeup_exact[1],
        r.seed
    ));
    s.push_str(
        "| encoder | draws | mean x | mean y | error x | error y | std. error x | std. error y |\n",
    );
    s.push_str("|---|---|---|---|---|---|---|---|\n");
    s.push_str(&format!(
        "| write-up (randomized rounding) | 2000 | {:.4} | {:.4} | {:+.4} | {:+.4} | z = {:+.2} | z = {:+.2} |\n",
        r.writeup_mean[0],
        r.writeup_mean[1],
        r.writeup_mean[0] as f64 - r.exact[0],
        r.writeup_mean[1] as f64 - r.exact[1],
        r.writeup_z[0],
        r.writeup_z[1]
    ));
    for m in &r.means {
        s.push_str(&format!(
            "| {} | {} | {:.4} | {:.4} | {:+.4} | {:+.4} | {:.4} | {:.4} |\n",
            m.encoder,
            m.draws,
            m.mean[0],
            m.mean[1],
            m.error[0],
            m.error[1],
            m.standard_error[0],
            m.standard_error[1]
        ));
    }
    s.push_str(
        "\nSpread of randomized rounding's mean (RMS over trials of mean - exact; predicted = \
         sqrt(e(1-e)/N)):\n\n",
    );
    s.push_str("| draws N | trials | RMS x | predicted x | RMS y | predicted y | RMS x * sqrt(N) | RMS y * sqrt(N) |\n");
    s.push_str("|---|---|---|---|---|---|---|---|\n");
    for p in &r.spread {
        s.push_str(&format!(
            "| {} | {} | {:.5} | {:.5} | {:.5} | {:.5} | {:.4} | {:.4} |\n",
            p.draws,
            p.trials,
            p.rms_error[0],
            p.predicted[0],
            p.rms_error[1],
            p.predicted[1],
            p.rms_times_sqrt_n[0],
            p.rms_times_sqrt_n[1]
        ));
    }
    s
}

/// Markdown tables of [`QuantizationReport`]: NMAE and NME per pair and heatmap size.
pub fn quantization_markdown(r: &QuantizationReport) -> String {
    let cfg = &r.config;
    let mut s = format!(
        "{} images x {} points, squished to {}x{} input; Gaussian sigma {} heatmap px; \
         {} randomized-rounding draws; errors against the float ground truth.\n\n",
        r.images, r.points_per_image, cfg.input, cfg.input, cfg.sigma, cfg.draws
    );
    let header = |s: &mut String, what: &str| {
        s.push_str(&format!("| {what} |"));
        for m in &cfg.sizes {
            s.push_str(&format!(" {m}x{m} |"));
        }
        s.push_str("\n|---|");
        for _ in &cfg.sizes {
            s.push_str("---|");
        }
        s.push('\n');
    };
    let cell = |pair: Pair, m: usize| r.rows.iter().find(|x| x.pair == pair && x.size == m);
    for (title, f) in [
        (
            "NMAE (x 1e-3)",
            (|q: &QuantRow| format!("{:.3}", q.nmae * 1e3)) as fn(&QuantRow) -> String,
        ),
        ("NME (%)", |q: &QuantRow| format!("{:.3}", q.nme * 100.0)),
        ("mean error (input px)", |q: &QuantRow| {
            format!("{:.3}", q.mean_error_px)
        }),
    ] {
        header(&mut s, title);
        for &pair in &Pair::ALL {
            s.push_str(&format!("| {} |", pair.label(cfg.k)));
            for &m in &cfg.sizes {
                match cell(pair, m) {
                    Some(q) => s.push_str(&format!(" {} |", f(q))),
                    None => s.push_str(" - |"),
                }
            }
            s.push('\n');
        }
        s.push('\n');
    }
    let masked: usize = r
        .rows
        .iter()
        .filter(|q| q.pair == Pair::GaussianArgmax)
        .map(|q| q.masked)
        .sum();
    s.push_str(&format!(
        "NME normaliser: {:?}. Points off the map (masked, not counted), summed over sizes: {masked}.\n\n",
        cfg.metric.norm.resolve(r.points_per_image)
    ));
    s.push_str("Pairs:\n");
    for &pair in &Pair::ALL {
        s.push_str(&format!(
            "- {}: {}\n",
            pair.label(cfg.k),
            pair.description()
        ));
    }
    s
}
