//! Training on several sources at once: `[[data.extra]]` roots mixed into every epoch by weight,
//! with a point mapping per source.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use hmreg::data::synthesis::generate::{generate, SynthConfig};
use hmreg::run::config::ExtraSource;
use hmreg::run::TrainConfig;
use hmreg::train::setup::Setup;

fn synth(root: &Path, train: usize, seed: u64) {
    generate(
        root,
        &SynthConfig {
            train,
            val: 2,
            test: 0,
            size: 64,
            seed,
        },
    )
    .unwrap();
}

/// The tiny config on `main` (8 training faces) with `other` (4 faces) mixed in.
fn mixed(dir: &Path, main_weight: f64, other_weight: f64) -> TrainConfig {
    let (main, other) = (dir.join("main"), dir.join("other"));
    synth(&main, 8, 1);
    synth(&other, 4, 2);
    let mut c = common::tiny_config(&main, 0, 1);
    c.data.generate_if_missing = false;
    c.data.weight = main_weight;
    c.data.extra = vec![ExtraSource {
        root: other,
        weight: other_weight,
        ..Default::default()
    }];
    c
}

#[test]
fn an_epoch_takes_each_source_by_its_weight_and_repeats_get_their_own_augmentation() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Setup::new(mixed(tmp.path(), 0.5, 2.0), &|_| {}).unwrap();
    assert_eq!(s.train_samples.len(), 12);
    // round(0.5 x 8) + round(2 x 4) = 12 draws: 3 batches of 4.
    assert_eq!(s.train.batches_per_epoch(), 3);
    for epoch in 0..3 {
        let draws: Vec<usize> = s.train.epoch_batches(epoch).concat();
        assert_eq!(draws.len(), 12);
        let mut per_sample: BTreeMap<usize, usize> = BTreeMap::new();
        for d in &draws {
            *per_sample.entry(d % 12).or_default() += 1;
        }
        let main: Vec<_> = per_sample.iter().filter(|(&i, _)| i < 8).collect();
        assert_eq!(
            main.len(),
            4,
            "four distinct main faces, once each: {per_sample:?}"
        );
        assert!(main.iter().all(|(_, &n)| n == 1));
        for i in 8..12 {
            assert_eq!(
                per_sample.get(&i),
                Some(&2),
                "every other face twice: {per_sample:?}"
            );
        }
    }
    // The half of the main source changes from epoch to epoch.
    let pick = |e| -> Vec<usize> {
        let mut v: Vec<usize> = s
            .train
            .epoch_batches(e)
            .concat()
            .into_iter()
            .filter(|&d| d < 8)
            .collect();
        v.sort_unstable();
        v
    };
    assert!((1..6).any(|e| pick(e) != pick(0)));
    // A face drawn twice in one epoch is augmented twice, differently.
    let draws = s.train.epoch_batches(0).concat();
    let twice = draws.iter().find(|&&d| d >= 12).copied().unwrap();
    let (a, b) = (
        s.train.item(twice % 12, 0).unwrap(),
        s.train.item(twice, 0).unwrap(),
    );
    assert_ne!(a.image, b.image);
}

#[test]
fn a_source_maps_its_points_onto_the_runs_points() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = mixed(tmp.path(), 1.0, 1.0);
    // The run learns file points 8, 30, 36, 45, 57; the other source lists them reversed.
    c.data.extra[0].points = Some("57,45,36,30,8".parse().unwrap());
    let s = Setup::new(c, &|_| {}).unwrap();
    let other = &s.train_samples[8];
    let file = hmreg::data::read_landmarks(&other.landmarks_path).unwrap();
    for (k, idx) in [57, 45, 36, 30, 8].into_iter().enumerate() {
        assert_eq!(other.points.xy[k], file[idx]);
    }
    let main = &s.train_samples[0];
    let file = hmreg::data::read_landmarks(&main.landmarks_path).unwrap();
    assert_eq!(main.points.xy[0], file[8]);
}

#[test]
fn bad_sources_are_reported_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = mixed(tmp.path(), 1.0, 1.0);
    c.data.extra[0].points = Some("1,2,3".parse().unwrap());
    let err = Setup::new(c, &|_| {}).err().unwrap().to_string();
    assert!(err.contains("other") && err.contains("3 points"), "{err}");
    let mut c = mixed(tmp.path(), 1.0, 1.0);
    c.data.extra[0].root = tmp.path().join("missing");
    let err = Setup::new(c, &|_| {}).err().unwrap().to_string();
    assert!(
        err.contains("missing") && err.contains("does not exist"),
        "{err}"
    );
    let mut c = mixed(tmp.path(), 1.0, 1.0);
    c.data.extra[0].weight = 0.0;
    assert!(c.validate().is_err());
    let mut c = mixed(tmp.path(), 1.0, 1.0);
    c.data.extra[0].origin = 2.0;
    let err = c.validate().err().unwrap().to_string();
    assert!(err.contains("origin") && err.contains('2'), "{err}");
}

#[test]
fn each_source_is_read_in_its_own_pixel_origin() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = mixed(tmp.path(), 1.0, 1.0);
    c.data.origin = 1.0;
    c.data.extra[0].origin = 0.5;
    let s = Setup::new(c, &|_| {}).unwrap();
    for (sample, origin) in [(&s.train_samples[0], 1.0), (&s.train_samples[8], 0.5)] {
        let file = hmreg::data::read_landmarks(&sample.landmarks_path).unwrap();
        assert_eq!(
            sample.points.xy[0],
            [file[8][0] - origin, file[8][1] - origin]
        );
    }
    let val = &s.val.samples()[0];
    let file = hmreg::data::read_landmarks(&val.landmarks_path).unwrap();
    assert_eq!(val.points.xy[0], [file[8][0] - 1.0, file[8][1] - 1.0]);
}
