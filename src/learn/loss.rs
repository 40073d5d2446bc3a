//! Training losses on heatmaps: MSE against Gaussian maps, BCE with logits against binary maps.
//!
//! Both take predictions and targets `(N, L, H, W)` and a visibility mask `(N, L)` (1 visible,
//! 0 invisible), and average the per-pixel loss over the pixels of visible maps only, so an invisible
//! point neither pulls its map towards zero nor dilutes the loss of the visible ones. With every
//! point visible this is fastai's `MSELossFlat` / `BCEWithLogitsLossFlat` (mean over all pixels).

use candle_core::Tensor;

use crate::{Error, Result};

/// Which loss compares predicted maps with targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// Mean squared error (variant 1, Gaussian targets).
    Mse,
    /// Binary cross-entropy with logits and `pos_weight` on the positive term (variant 2).
    Bce,
}

/// `[loss]` section of a training config.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossConfig {
    pub kind: LossKind,
    /// Weight of the positive term in BCE (one positive pixel in 64x64 = 4096: the recipe uses 100).
    /// Ignored by MSE.
    pub pos_weight: f64,
}

impl Default for LossConfig {
    /// Variant 1 of the recipe: MSE on Gaussian maps.
    fn default() -> Self {
        LossConfig {
            kind: LossKind::Mse,
            pos_weight: 100.0,
        }
    }
}

impl LossConfig {
    pub fn validate(&self) -> Result<()> {
        if !(self.pos_weight.is_finite() && self.pos_weight > 0.0) {
            return Err(Error::config(format!(
                "loss.pos_weight must be a positive number, got {}",
                self.pos_weight
            )));
        }
        Ok(())
    }

    /// The configured loss as a scalar tensor (differentiable with respect to `pred`).
    pub fn compute(&self, pred: &Tensor, target: &Tensor, mask: &Tensor) -> Result<Tensor> {
        match self.kind {
            LossKind::Mse => masked_mse(pred, target, mask),
            LossKind::Bce => masked_bce_with_logits(pred, target, mask, self.pos_weight),
        }
    }
}

/// Mean squared error over the pixels of visible maps.
pub fn masked_mse(pred: &Tensor, target: &Tensor, mask: &Tensor) -> Result<Tensor> {
    check_shapes(pred, target, mask)?;
    let per_pixel = (pred - target.to_dtype(pred.dtype())?)?.sqr()?;
    masked_mean(&per_pixel, mask)
}

/// Binary cross-entropy with logits, `pos_weight` multiplying the positive term, averaged over the
/// pixels of visible maps. Numerically stable for every finite logit: candle_nn's version computes
/// `log(sigmoid(x))` and overflows to inf near |x| = 40 (candle issue 2561). Here
///
/// `loss = (1 - y) x + (1 + (pw - 1) y) softplus(-x)`, with
/// `softplus(-x) = log(1 + exp(-|x|)) + (|x| - x) / 2`,
///
/// the exponent is never positive. `(|x| - x) / 2` equals `relu(-x)` but its gradient at exactly
/// zero is right with Candle's conventions (Candle's relu has derivative 1 at 0, which would make
/// the derivative of softplus(-x) at 0 come out as -1.5 instead of -0.5).
pub fn masked_bce_with_logits(
    pred: &Tensor,
    target: &Tensor,
    mask: &Tensor,
    pos_weight: f64,
) -> Result<Tensor> {
    check_shapes(pred, target, mask)?;
    let x = pred;
    let y = target.to_dtype(x.dtype())?;
    let abs = x.abs()?;
    let softplus_neg = ((abs.neg()?.exp()? + 1.0)?.log()? + ((&abs - x)? * 0.5)?)?;
    let weight = ((&y * (pos_weight - 1.0))? + 1.0)?;
    let negative_term = ((1.0 - &y)? * x)?;
    let per_pixel = (negative_term + (weight * softplus_neg)?)?;
    masked_mean(&per_pixel, mask)
}

fn check_shapes(pred: &Tensor, target: &Tensor, mask: &Tensor) -> Result<()> {
    if pred.rank() != 4 || pred.dims() != target.dims() {
        return Err(Error::Msg(format!(
            "loss: predictions {:?} and targets {:?} must both be (N, L, H, W)",
            pred.dims(),
            target.dims()
        )));
    }
    if mask.dims() != &pred.dims()[..2] {
        return Err(Error::Msg(format!(
            "loss: mask {:?} must be (N, L) = {:?}",
            mask.dims(),
            &pred.dims()[..2]
        )));
    }
    Ok(())
}

/// Sum of `per_pixel` over visible maps divided by their pixel count; zero when nothing is visible.
fn masked_mean(per_pixel: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let (n, l, h, w) = per_pixel.dims4()?;
    let mask = mask.to_dtype(per_pixel.dtype())?;
    // The count stays a tensor: reading it on the host would stall a GPU every step.
    let count = (mask.sum_all()? * (h * w) as f64)?.maximum(1.0)?;
    let per_map = per_pixel.sum_keepdim(3)?.sum_keepdim(2)?.reshape((n, l))?;
    let total = (per_map * mask)?.sum_all()?;
    Ok(total.div(&count)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Var};

    /// The gradient of `loss` with respect to `var`, flattened.
    fn gradient(loss: &Tensor, var: &Var) -> Vec<f32> {
        let grads = loss.backward().unwrap();
        let g = grads.get(var.as_tensor()).unwrap();
        g.flatten_all().unwrap().to_vec1().unwrap()
    }

    fn t4(v: &[f32], dims: (usize, usize, usize, usize)) -> Tensor {
        Tensor::from_slice(v, dims, &crate::device::test_device()).unwrap()
    }

    fn scalar(t: &Tensor) -> f64 {
        t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
    }

    /// Reference BCE in f64, the textbook form (fine for moderate logits).
    fn bce_ref(x: f64, y: f64, pw: f64) -> f64 {
        let s = 1.0 / (1.0 + (-x).exp());
        -(pw * y * s.ln() + (1.0 - y) * (1.0 - s).ln())
    }

    #[test]
    fn mse_matches_hand_computation_and_ignores_masked_maps() {
        // 1 image, 2 maps of 1x2 pixels; the second map is masked out.
        let pred = t4(&[1.0, 2.0, 100.0, -100.0], (1, 2, 1, 2));
        let target = t4(&[0.0, 0.0, 0.0, 0.0], (1, 2, 1, 2));
        let mask = Tensor::from_slice(&[1f32, 0.0], (1, 2), &crate::device::test_device()).unwrap();
        let loss = masked_mse(&pred, &target, &mask).unwrap();
        assert!((scalar(&loss) - 2.5).abs() < 1e-6);
        let all = Tensor::ones((1, 2), DType::F32, &crate::device::test_device()).unwrap();
        let loss = masked_mse(&pred, &target, &all).unwrap();
        assert!((scalar(&loss) - (1.0 + 4.0 + 1e4 + 1e4) / 4.0).abs() < 1e-3);
    }

    #[test]
    fn nothing_visible_gives_zero() {
        let pred = t4(&[1.0, 2.0], (1, 1, 1, 2));
        let target = t4(&[0.0, 1.0], (1, 1, 1, 2));
        let mask = Tensor::zeros((1, 1), DType::F32, &crate::device::test_device()).unwrap();
        assert_eq!(scalar(&masked_mse(&pred, &target, &mask).unwrap()), 0.0);
        let b = masked_bce_with_logits(&pred, &target, &mask, 100.0).unwrap();
        assert_eq!(scalar(&b), 0.0);
    }

    #[test]
    fn bce_matches_reference_for_moderate_logits() {
        let xs = [-8.0f32, -2.0, -0.5, 0.0, 0.3, 1.0, 4.0, 9.0];
        let ys = [0.0f32, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0];
        let pred = t4(&xs, (1, 1, 2, 4));
        let target = t4(&ys, (1, 1, 2, 4));
        let mask = Tensor::ones((1, 1), DType::F32, &crate::device::test_device()).unwrap();
        for pw in [1.0, 100.0] {
            let got = scalar(&masked_bce_with_logits(&pred, &target, &mask, pw).unwrap());
            let want: f64 = xs
                .iter()
                .zip(ys.iter())
                .map(|(&x, &y)| bce_ref(x as f64, y as f64, pw))
                .sum::<f64>()
                / 8.0;
            assert!(
                (got - want).abs() < 1e-5 * want.max(1.0),
                "pw {pw}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn bce_is_finite_and_exact_for_huge_logits() {
        // At |x| = 50..1e4 the naive form overflows; the exact values are known in closed form.
        let xs = [50.0f32, -50.0, 1e4, -1e4];
        let ys = [1.0f32, 1.0, 0.0, 0.0];
        let mask = Tensor::ones((1, 1), DType::F32, &crate::device::test_device()).unwrap();
        let pw = 100.0;
        let expected = [
            0.0,       // confident and right
            pw * 50.0, // confident and wrong on a positive
            1e4,       // confident and wrong on a negative
            0.0,       // confident and right
        ];
        for i in 0..4 {
            let pred = t4(&xs[i..i + 1], (1, 1, 1, 1));
            let target = t4(&ys[i..i + 1], (1, 1, 1, 1));
            let got = scalar(&masked_bce_with_logits(&pred, &target, &mask, pw).unwrap());
            assert!(got.is_finite(), "logit {}", xs[i]);
            assert!((got - expected[i]).abs() < 1e-3, "{got} vs {}", expected[i]);
        }
    }

    #[test]
    fn bce_gradient_matches_analytic_including_zero() {
        // d/dx = (1 - y) - (1 + (pw - 1) y) sigmoid(-x)  (per pixel, before the mean).
        let xs = [0.0f32, 0.0, -3.0, 2.5, 60.0, -60.0];
        let ys = [0.0f32, 1.0, 1.0, 0.0, 1.0, 1.0];
        let pw = 10.0;
        let var = Var::from_tensor(&t4(&xs, (1, 1, 1, 6))).unwrap();
        let target = t4(&ys, (1, 1, 1, 6));
        let mask = Tensor::ones((1, 1), DType::F32, &crate::device::test_device()).unwrap();
        let loss = masked_bce_with_logits(var.as_tensor(), &target, &mask, pw).unwrap();
        let g = gradient(&loss, &var);
        for i in 0..6 {
            let (x, y) = (xs[i] as f64, ys[i] as f64);
            let sig_neg = 1.0 / (1.0 + x.exp());
            let want = ((1.0 - y) - (1.0 + (pw - 1.0) * y) * sig_neg) / 6.0;
            assert!(
                (g[i] as f64 - want).abs() < 1e-5,
                "x {x} y {y}: {} vs {want}",
                g[i]
            );
        }
    }

    #[test]
    fn masked_maps_get_no_gradient() {
        let var = Var::from_tensor(&t4(&[1.0, 2.0, 3.0, 4.0], (1, 2, 1, 2))).unwrap();
        let target = t4(&[0.0, 1.0, 0.0, 1.0], (1, 2, 1, 2));
        let mask = Tensor::from_slice(&[0f32, 1.0], (1, 2), &crate::device::test_device()).unwrap();
        for cfg in [
            LossConfig::default(),
            LossConfig {
                kind: LossKind::Bce,
                pos_weight: 100.0,
            },
        ] {
            let loss = cfg.compute(var.as_tensor(), &target, &mask).unwrap();
            let g = gradient(&loss, &var);
            assert_eq!(&g[..2], &[0.0, 0.0]);
            assert!(g[2] != 0.0 && g[3] != 0.0);
        }
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let pred = t4(&[1.0, 2.0], (1, 1, 1, 2));
        let target = t4(&[1.0, 2.0], (1, 2, 1, 1));
        let mask = Tensor::ones((1, 1), DType::F32, &crate::device::test_device()).unwrap();
        assert!(masked_mse(&pred, &target, &mask).is_err());
    }
}
