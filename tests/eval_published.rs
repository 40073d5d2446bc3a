//! Published figures beside `hmreg eval`'s own: the numbers of method.md, for whole known layouts
//! with their own normaliser only.

mod common;

use hmreg::eval::dataset::EvalSet;
use hmreg::eval::published::{comparable, FIGURES};
use hmreg::metrics::NmeNorm;

fn nmes(points: usize, all: bool, norm: NmeNorm) -> Vec<f32> {
    comparable(points, all, norm)
        .iter()
        .map(|p| p.nme_percent)
        .collect()
}

#[test]
fn published_figures_are_method_md_s_and_only_for_like_layouts() {
    // HRNet-Facial 300-W common / full; the randomized-rounding models on 300-W (ground-truth
    // and dataset box), WFLW and LaPa.
    assert_eq!(nmes(68, true, NmeNorm::Auto), [2.91, 3.34, 3.48, 3.62]);
    assert_eq!(
        nmes(68, true, NmeNorm::Pair(45, 36)),
        [2.91, 3.34, 3.48, 3.62]
    );
    assert_eq!(nmes(106, true, NmeNorm::Auto), [1.40]);
    assert_eq!(nmes(98, true, NmeNorm::Pair(60, 72)), [3.81]);
    // WFLW's default normaliser here is the box diagonal: not the published one.
    assert!(nmes(98, true, NmeNorm::Auto).is_empty());
    assert!(nmes(68, true, NmeNorm::BoxDiagonal).is_empty());
    assert!(nmes(68, false, NmeNorm::Auto).is_empty());
    assert!(nmes(5, true, NmeNorm::Auto).is_empty());
    assert!(FIGURES
        .iter()
        .all(|f| !f.protocol.is_empty() && !f.source.is_empty()));
}

#[test]
fn an_eval_set_knows_when_it_holds_a_whole_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let mut cfg = common::tiny_config(&root, 0, 1);
    hmreg::data::synthesis::generate::generate(&root, &cfg.data.synth).unwrap();
    let device = hmreg::device::test_device();
    // The tiny config selects 5 of the 68 points: not a layout.
    let run = cfg.clone().resolve(None).unwrap();
    let set = EvalSet::open(&run, &root, "val", 0.0, 0, None, &device).unwrap();
    assert_eq!(set.whole_layout(), None);
    cfg.data.points = "all".parse().unwrap();
    let run = cfg.resolve(Some(68)).unwrap();
    let set = EvalSet::open(&run, &root, "val", 0.0, 0, None, &device).unwrap();
    assert_eq!(set.whole_layout(), Some(68));
}
